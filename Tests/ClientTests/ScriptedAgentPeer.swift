import Foundation
import Synchronization
import YonderProtocol
#if canImport(Glibc)
import Glibc
#endif

/// A stand-in agent on a real loopback socket that answers with a script, for the client
/// behaviours a real agent cannot be made to show on demand (never answering, sending a
/// malformed frame). It accepts one connection and checks the token `secret`.
final class ScriptedAgentPeer: Sendable {
    /// Sends a message to the client.
    typealias Send = @Sendable (Message) -> Void

    let port: Int
    /// The listening socket, -1 once closed. Only the serving thread closes it, and `stop`
    /// shuts it down under this lock, so neither reaches a number reused by another socket.
    private let listener: Mutex<Int32>
    /// The accepted connection, -1 before and after it. Every use of the descriptor holds
    /// this lock, so none can reach a number the kernel has since given to another socket.
    private let client = Mutex<Int32>(-1)
    private let received = Mutex<[Message]>([])

    init(script: @escaping @Sendable (Message, _ send: @escaping Send) -> Void) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(listener, raw, length) == 0 && listen(listener, 4) == 0 && getsockname(listener, raw, &length) == 0
            }
        }
        guard bound else {
            close(listener)
            throw POSIXError(.EADDRINUSE)
        }
        self.listener = Mutex(listener)
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in serve(script) }
        thread.start()
    }

    /// Every message the client sent, in order.
    var messages: [Message] { received.withLock { $0 } }

    /// Drops the client's connection abruptly.
    func dropClient() {
        client.withLock { fd in
            if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    /// Writes raw bytes to the client.
    func sendRaw(_ bytes: [UInt8]) {
        client.withLock { fd in
            guard fd >= 0 else { return }
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                offset += n
            }
        }
    }

    /// Drops the client and stops listening; the serving thread closes the listener.
    func stop() {
        dropClient()
        listener.withLock { fd in
            if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }

    private func serve(_ script: @escaping @Sendable (Message, @escaping Send) -> Void) {
        let fd = accept(listener.withLock { $0 }, nil, nil)
        listener.withLock { listening in
            close(listening)
            listening = -1
        }
        guard fd >= 0 else { return }
        client.withLock { $0 = fd }
        let send: Send = { [self] message in sendRaw(message.encodedFrame()) }
        var decoder = FrameDecoder()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var handshake = AgentHandshake(token: "secret")
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            decoder.append(buffer[0..<n])
            while let payload = try? decoder.next(), let message = try? Message.decode(payload: payload) {
                received.withLock { $0.append(message) }
                if handshake.state != .established {
                    do {
                        if var hello = try handshake.receive(message) {
                            hello.name = "scripted-peer"
                            hello.version = "0.0.1"
                            hello.build = "test"
                            hello.maxFrame = 1 << 20
                            send(.hello(hello))
                        }
                    } catch {
                        send(.error(.init(id: nil, error: error)))
                        shutdown(fd, Int32(SHUT_RDWR))
                    }
                    continue
                }
                script(message, send)
            }
        }
        client.withLock { descriptor in
            descriptor = -1
            close(fd)
        }
    }
}
