import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A TCP listener on 127.0.0.1 that takes connections and never answers: a stopped server,
/// an SSH server that never completes its handshake, a registry that never replies.
public final class SilentListener: Sendable {
    /// What the listener does with a connection.
    public enum Behaviour: String, CaseIterable, Sendable, CustomStringConvertible {
        /// Listens but never calls accept (the kernel completes the TCP handshake), as a
        /// stopped sshd does.
        case neverAccepts
        /// Accepts and keeps the connection open without sending a byte.
        case acceptsAndStaysSilent
        /// Accepts and sends an SSH banner, then nothing (the key exchange never starts).
        case sendsBannerThenStaysSilent

        public var description: String { rawValue }
    }

    /// The port it listens on.
    public let port: Int
    private let behaviour: Behaviour
    private let fd: Int32
    private let state = State()
    private final class State: @unchecked Sendable {
        // Safe: every member is behind `lock`, but `ended`, which is thread-safe.
        let lock = NSLock()
        var accepted: [Int32] = []
        var stopped = false
        let ended = DispatchSemaphore(value: 0)
    }

    /// Listens on a free port of 127.0.0.1, and behaves as `behaviour` says.
    public init(_ behaviour: Behaviour) throws {
        self.behaviour = behaviour
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SilentListenerError("socket() failed") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        // The backlog holds every connection of a test when nothing accepts them.
        guard bound, listen(fd, 256) == 0 else {
            close(fd)
            throw SilentListenerError("cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))")
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
        let state = state
        guard behaviour != .neverAccepts else {
            state.ended.signal()
            return
        }
        let thread = Thread { [fd, behaviour, state] in
            defer { state.ended.signal() }
            while true {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&pfd, 1, 20)
                if state.lock.withLock({ state.stopped }) { return }
                guard pfd.revents & Int16(POLLIN) != 0 else { continue }
                let client = accept(fd, nil, nil)
                guard client >= 0 else { continue }
                if behaviour == .sendsBannerThenStaysSilent {
                    let banner = Array("SSH-2.0-OpenSSH_9.2p1 Silent\r\n".utf8)
                    _ = banner.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                }
                state.lock.withLock { state.accepted.append(client) }
            }
        }
        thread.start()
    }

    /// Connections taken so far (for `neverAccepts`, those waiting in the backlog).
    public var connections: Int {
        if behaviour == .neverAccepts {
            // Accept what the kernel queued, to count it.
            while true {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, 0) == 1 else { break }
                let client = accept(fd, nil, nil)
                guard client >= 0 else { break }
                state.lock.withLock { state.accepted.append(client) }
            }
        }
        return state.lock.withLock { state.accepted.count }
    }

    deinit {
        state.lock.withLock { state.stopped = true }
        state.ended.wait()
        for client in state.accepted { close(client) }
        close(fd)
    }
}

/// Why a ``SilentListener`` could not start.
public struct SilentListenerError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
