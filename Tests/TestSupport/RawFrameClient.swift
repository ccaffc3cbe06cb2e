#if canImport(Glibc)
import Glibc
#endif
public import YonderProtocol

/// A blocking TCP client that sends arbitrary bytes and reads frames: for tests that must send
/// what a well-behaved client never would.
public final class RawFrameClient {
    private let fd: Int32
    private var reader = MessageReader(acceptsAttachments: true)

    /// Connects to 127.0.0.1:`port`, with `timeout` seconds for each read.
    public init(port: Int, timeout: Int = 20) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw RawFrameError("cannot connect to 127.0.0.1:\(port)")
        }
        var time = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(fd) }

    /// Sends raw bytes; returns false if the peer has closed.
    @discardableResult
    public func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 && errno == EINTR { continue }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    /// Sends one message as a frame.
    @discardableResult
    package func send(_ message: Message) -> Bool { send(message.encodedFrame()) }

    /// Sends `hello` with a fresh nonce; when the agent's `hello` arrives, `receive()` answers
    /// it with `auth`, proving `token` (whether or not the agent's own proof matched it).
    /// `binary`: announce that this client accepts binary attachments.
    public func hello(token: String, binary: Bool = false) {
        pendingAuth = (token, HandshakeProof.randomBytes())
        send(.hello(Message.Hello(nonce: pendingAuth?.nonce, name: "raw-test-client", binary: binary)))
    }

    private var pendingAuth: (token: String, nonce: [UInt8])?
    /// Whether the agent's `hello` proved that it holds the token given to `hello(token:)`.
    public private(set) var agentProved: Bool?

    /// The next message, or nil when the peer closed (or the read timed out).
    package func receive() throws -> Message? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            if let (object, attachments) = try reader.next() {
                let message = try Message.decode(object).with(attachments: attachments)
                if case .hello(let hello) = message, let (token, nonce) = pendingAuth, let agentNonce = hello.nonce {
                    pendingAuth = nil
                    let expected = HandshakeProof.agent(token: token, clientNonce: nonce, agentNonce: agentNonce)
                    agentProved = hello.proof.map { HandshakeProof.matches($0, expected) } ?? false
                    send(.auth(Message.Auth(proof: HandshakeProof.client(token: token, clientNonce: nonce, agentNonce: agentNonce))))
                }
                return message
            }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { return nil }
            reader.append(buffer[0..<count])
        }
    }

    /// Reads until the reply (`result` or `error`) of request `id`, returning it and what came before it for that id.
    package func reply(to id: Int) throws -> (reply: Message, before: [Message]) {
        var before: [Message] = []
        while let message = try receive() {
            guard message.requestID == id else { continue }
            switch message {
            case .result, .error: return (message, before)
            default: before.append(message)
            }
        }
        throw RawFrameError("the connection closed before the reply to request \(id)")
    }
}

/// A failure of the raw test client.
public struct RawFrameError: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String
    public init(_ description: String) { self.description = description }
}
