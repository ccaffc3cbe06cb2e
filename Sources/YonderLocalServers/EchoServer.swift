import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A TCP echo server on 127.0.0.1 for tunnel tests and benchmarks: every connection gets
/// back exactly what it sends, on its own thread. As the baseline of one-way transfers it can
/// instead swallow what it gets or send bytes of its own (`Mode`).
public final class EchoServer: @unchecked Sendable {
    /// What the server does with each connection.
    public enum Mode: Sendable {
        /// Sends back what arrives.
        case echo
        /// Reads until the peer stops sending (a half-close), then sends the number of bytes
        /// it read as 8 bytes, big-endian, and closes.
        case sink
        /// Sends this many bytes, then closes.
        case source(bytes: Int)
        /// As `sink`, writing what arrives to the file at this path (created or truncated).
        case fileSink(path: String)
        /// Sends the file at this path, then closes.
        case fileSource(path: String)
    }

    // Safe: `port` is set in init and then only read; `connections` and `listener` are
    // behind `lock`. Only the accepting thread closes the listener (and sets it to -1), once
    // accept fails, and `stop` shuts it down under the lock, so neither can reach a
    // descriptor number the kernel has since given to another socket.
    public let port: Int
    private let lock = NSLock()
    private var connections = 0
    private var listener: Int32

    public init(mode: Mode = .echo) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        guard listener >= 0 else { throw LocalServerError("socket() failed") }
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) }
        }
        guard bound == 0, listen(listener, 512) == 0 else {
            close(listener)
            throw LocalServerError("bind/listen failed")
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [weak self] in
            while true {
                let fd = accept(listener, nil, nil)
                if fd < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    self?.lock.withLock { self?.listener = -1 }
                    close(listener)
                    return
                }
                self?.lock.withLock { self?.connections += 1 }
                var one: Int32 = 1
                setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                let worker = Thread {
                    defer { close(fd) }
                    var buffer = [UInt8](repeating: 0, count: 256 << 10)
                    func sendAll(_ count: Int) -> Bool {
                        var sent = 0
                        while sent < count {
                            let m = buffer.withUnsafeBytes { send(fd, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL)) }
                            if m <= 0 { return false }
                            sent += m
                        }
                        return true
                    }
                    switch mode {
                    case .echo:
                        while true {
                            let n = read(fd, &buffer, buffer.count)
                            if n <= 0 || !sendAll(n) { return }
                        }
                    case .sink, .fileSink:
                        var file: Int32 = -1
                        if case .fileSink(let path) = mode {
                            file = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                            guard file >= 0 else { return }
                        }
                        defer { if file >= 0 { close(file) } }
                        var total: UInt64 = 0
                        while true {
                            let n = read(fd, &buffer, buffer.count)
                            if n <= 0 { break }
                            if file >= 0 {
                                // A short or failed write shows as a wrong count in the answer.
                                guard buffer.withUnsafeBytes({ write(file, $0.baseAddress!, n) }) == n else { break }
                            }
                            total += UInt64(n)
                        }
                        withUnsafeBytes(of: total.bigEndian) { buffer.replaceSubrange(0..<8, with: $0) }
                        _ = sendAll(8)
                    case .source(let bytes):
                        var left = bytes
                        while left > 0, sendAll(min(left, buffer.count)) { left -= min(left, buffer.count) }
                    case .fileSource(let path):
                        let file = open(path, O_RDONLY | O_CLOEXEC)
                        guard file >= 0 else { return }
                        defer { close(file) }
                        while true {
                            let n = read(file, &buffer, buffer.count)
                            if n <= 0 || !sendAll(n) { break }
                        }
                    }
                }
                worker.stackSize = 512 << 10
                worker.start()
            }
        }
        thread.start()
    }

    /// How many connections it has accepted.
    public var acceptedConnections: Int { lock.withLock { connections } }

    /// Stops accepting (open connections keep echoing until their peer closes).
    public func stop() {
        lock.withLock {
            // Wakes the accepting thread, which closes the listener.
            if listener >= 0 { shutdown(listener, Int32(SHUT_RDWR)) }
        }
    }

    deinit { stop() }
}
