import Crypto

/// The proofs of the handshake (PROTOCOL.md section 5): each side shows that it holds the
/// agent's token without sending it, by an HMAC-SHA256 keyed by the token's UTF-8 bytes over
/// a label, a zero byte, the client's nonce and the agent's nonce.
///
/// The labels differ, so an agent's proof is never a valid client proof; the agent's nonce is
/// fresh for each connection, so a recorded client proof is worth nothing on another one.
package enum HandshakeProof {
    /// The label of the agent's proof, in its `hello`.
    package static let agentLabel = "yonder-agent-proof"
    /// The label of the client's proof, in `auth`.
    package static let clientLabel = "yonder-client-proof"
    /// How many random bytes a nonce has (16 to 64 are accepted).
    package static let nonceLength = 32
    /// The nonce lengths a receiver accepts.
    package static let acceptedNonceLengths = 16...64

    /// The agent's proof for the two nonces.
    package static func agent(token: String, clientNonce: [UInt8], agentNonce: [UInt8]) -> [UInt8] {
        mac(token: token, label: agentLabel, clientNonce: clientNonce, agentNonce: agentNonce)
    }

    /// The client's proof for the two nonces.
    package static func client(token: String, clientNonce: [UInt8], agentNonce: [UInt8]) -> [UInt8] {
        mac(token: token, label: clientLabel, clientNonce: clientNonce, agentNonce: agentNonce)
    }

    /// Fresh random bytes for a nonce (or a token), from the system's secure source.
    package static func randomBytes(_ count: Int = nonceLength) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// A new token: 32 random bytes as 64 lowercase hexadecimal characters.
    package static func newToken() -> String {
        randomBytes(32).map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]])
        }.joined()
    }

    /// Whether two proofs are equal, in time that does not depend on where they differ.
    package static func matches(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in a.indices { difference |= a[i] ^ b[i] }
        return difference == 0
    }

    private static func mac(token: String, label: String, clientNonce: [UInt8], agentNonce: [UInt8]) -> [UInt8] {
        var authenticator = HMAC<SHA256>(key: SymmetricKey(data: Array(token.utf8)))
        authenticator.update(data: Array(label.utf8) + [0])
        authenticator.update(data: clientNonce)
        authenticator.update(data: agentNonce)
        return Array(authenticator.finalize())
    }
}
