/// The agent's side of the handshake (PROTOCOL.md section 5): the client's `hello` with a
/// supported version and a nonce, answered by the agent's `hello` with its own nonce and its
/// proof; then the client's `auth` with its proof. Nothing else is accepted before that.
package struct AgentHandshake: Sendable {
    /// Where the handshake stands.
    package enum State: Sendable, Hashable {
        /// Nothing received yet: only `hello` is accepted.
        case awaitingHello
        /// The agent has answered `hello`: only `auth` is accepted.
        case awaitingAuth
        /// The client proved it holds the token.
        case established
    }

    /// Where the handshake stands.
    package private(set) var state: State = .awaitingHello
    private let token: String
    private let agentNonce: [UInt8]
    private var clientNonce: [UInt8] = []

    /// Makes a handshake that accepts clients holding `token`; `agentNonce` is fresh random
    /// bytes unless a test fixes it.
    package init(token: String, agentNonce: [UInt8] = HandshakeProof.randomBytes()) {
        self.token = token
        self.agentNonce = agentNonce
    }

    /// Checks a message received from the client. For the client's `hello` it returns what
    /// the agent's `hello` must carry (its nonce and proof); the caller adds its name,
    /// version, build and frame limit. Throws the error the agent must send for a message
    /// that is not allowed now; before `established` every such error is fatal.
    @discardableResult
    package mutating func receive(_ message: Message) throws(ProtocolError) -> Message.Hello? {
        switch (state, message) {
        case (.awaitingHello, .hello(let hello)):
            guard hello.protocolVersion == Message.protocolVersion else {
                throw ProtocolError(.unsupportedVersion, "this agent speaks protocol version \(Message.protocolVersion), the client sent \(hello.protocolVersion); use a client and an agent of the same Yonder release", path: ["protocol"])
            }
            guard let nonce = hello.nonce else {
                throw ProtocolError(.invalidMessage, "hello must carry a nonce of \(HandshakeProof.acceptedNonceLengths) random bytes in base64", path: ["nonce"])
            }
            guard HandshakeProof.acceptedNonceLengths.contains(nonce.count) else {
                throw ProtocolError(.invalidMessage, "the nonce must be \(HandshakeProof.acceptedNonceLengths) bytes, not \(nonce.count)", path: ["nonce"])
            }
            clientNonce = nonce
            state = .awaitingAuth
            return Message.Hello(
                nonce: agentNonce, proof: HandshakeProof.agent(token: token, clientNonce: nonce, agentNonce: agentNonce))
        case (.awaitingHello, _):
            throw ProtocolError(.helloRequired, "the first message must be hello, not \(message.type)")
        case (.awaitingAuth, .auth(let auth)):
            let expected = HandshakeProof.client(token: token, clientNonce: clientNonce, agentNonce: agentNonce)
            guard HandshakeProof.matches(auth.proof, expected) else {
                throw ProtocolError(.unauthorized, "the proof in auth does not match this agent's token", path: ["proof"])
            }
            state = .established
            return nil
        case (.awaitingAuth, _):
            throw ProtocolError(.unauthorized, "the second message must be auth, proving the client holds the token, not \(message.type)")
        case (.established, .hello), (.established, .auth):
            throw ProtocolError(.unexpectedMessage, "the handshake is already done on this connection")
        case (.established, .result), (.established, .error), (.established, .log), (.established, .output):
            throw ProtocolError(.unexpectedMessage, "\(message.type) is sent by the agent, not to it")
        case (.established, _):
            return nil
        }
    }
}
