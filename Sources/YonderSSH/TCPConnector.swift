import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Opens the TCP connection a session runs on.
enum TCPConnector {
    /// Resolves `host` and connects to the first address that answers before `deadline`,
    /// returning a non-blocking socket with TCP_NODELAY set.
    static func connect(host: String, port: Int, deadline: ContinuousClock.Instant) throws -> Int32 {
        let destination = "\(host):\(port)"
        guard (1...65535).contains(port) else {
            throw SSHError(.invalidArgument, "port \(port) of \(host) is not between 1 and 65535")
        }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw SSHError(.unreachable, "cannot resolve \(host): \(String(cString: gai_strerror(status))); check the host name")
        }
        defer { freeaddrinfo(list) }

        var lastError: SSHError?
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            if fd < 0 { continue }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if systemConnect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return fd }
            if errno != EINPROGRESS {
                lastError = connectError(errno, destination)
                close(fd)
                continue
            }
            let remaining = deadline - ContinuousClock.now
            let milliseconds = max(0, Int32(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000))
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&pfd, 1, milliseconds)
            if ready == 0 {
                close(fd)
                throw SSHError(.timedOut, "connecting to \(destination) timed out; is the host up and the port open?")
            }
            var soError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length)
            if ready > 0 && soError == 0 { return fd }
            lastError = connectError(soError != 0 ? soError : errno, destination)
            close(fd)
        }
        throw lastError ?? SSHError(.unreachable, "no address of \(host) could be used")
    }

    private static func systemConnect(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
        #if canImport(Glibc)
        Glibc.connect(fd, address, length)
        #else
        Darwin.connect(fd, address, length)
        #endif
    }

    private static func connectError(_ code: Int32, _ destination: String) -> SSHError {
        let reason = String(cString: strerror(code))
        switch code {
        case ECONNREFUSED:
            return SSHError(.refused, "\(destination) refused the connection: is sshd running and listening on that port?")
        case ETIMEDOUT:
            return SSHError(.timedOut, "connecting to \(destination) timed out: \(reason)")
        default:
            return SSHError(.unreachable, "cannot reach \(destination): \(reason)")
        }
    }
}
