/// The agent's side of the handshake: the first message must be a `hello` with a supported
/// protocol version and the right token; nothing else is accepted before it.
public struct AgentHandshake: Sendable {
    /// Where the handshake stands.
    public enum State: Sendable, Hashable {
        case awaitingHello
        case established
    }

    /// Where the handshake stands.
    public private(set) var state: State = .awaitingHello
    private let expectedToken: [UInt8]

    /// Makes a handshake that accepts `token`.
    public init(token: String) {
        self.expectedToken = Array(token.utf8)
    }

    /// Checks a message received from the client. Throws the error the agent must send
    /// (then close) for a message that is not allowed in the current state.
    public mutating func receive(_ message: Message) throws(ProtocolError) {
        switch (state, message) {
        case (.awaitingHello, .hello(let hello)):
            guard hello.protocolVersion == Message.protocolVersion else {
                throw ProtocolError(.unsupportedVersion, "this agent speaks protocol version \(Message.protocolVersion), the client sent \(hello.protocolVersion)", path: ["protocol"])
            }
            guard let token = hello.token, Self.constantTimeEqual(Array(token.utf8), expectedToken) else {
                throw ProtocolError(.unauthorized, hello.token == nil ? "hello must carry the agent's token" : "the token in hello is not this agent's token", path: ["token"])
            }
            state = .established
        case (.awaitingHello, _):
            throw ProtocolError(.helloRequired, "the first message must be hello, not \(message.type)")
        case (.established, .hello):
            throw ProtocolError(.unexpectedMessage, "hello was already exchanged on this connection")
        case (.established, .result), (.established, .error), (.established, .log), (.established, .output):
            throw ProtocolError(.unexpectedMessage, "\(message.type) is sent by the agent, not to it")
        case (.established, _):
            break
        }
    }

    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}
