import Foundation
import Testing
import YonderProtocol

/// The proofs of the handshake against protocol/vectors/proofs/proofs.json, computed by an
/// independent implementation (Python's hmac module).
@Suite struct HandshakeProofTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var description: String
        var token: String
        var clientNonce: [UInt8]
        var agentNonce: [UInt8]
        var agentProof: [UInt8]
        var clientProof: [UInt8]
        var testDescription: String { description }
    }

    static func cases() throws -> [Case] {
        let url = VectorCatalog.vectorsFolder.appendingPathComponent("proofs").appendingPathComponent("proofs.json")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]
        let items = try #require(object?["proofs"] as? [[String: String]])
        func bytes(_ item: [String: String], _ key: String) throws -> [UInt8] {
            let text = try #require(item[key])
            let data = try #require(Data(base64Encoded: text))
            return [UInt8](data)
        }
        return try items.map { item in
            Case(description: item["description"] ?? "?", token: try #require(item["token"]),
                 clientNonce: try bytes(item, "clientNonce"), agentNonce: try bytes(item, "agentNonce"),
                 agentProof: try bytes(item, "agentProof"), clientProof: try bytes(item, "clientProof"))
        }
    }

    @Test func theFileHasCases() throws {
        #expect(try Self.cases().count >= 3)
    }

    @Test(arguments: (try? HandshakeProofTests.cases()) ?? [])
    func proofsMatchTheVectors(_ c: Case) {
        #expect(HandshakeProof.agent(token: c.token, clientNonce: c.clientNonce, agentNonce: c.agentNonce) == c.agentProof)
        #expect(HandshakeProof.client(token: c.token, clientNonce: c.clientNonce, agentNonce: c.agentNonce) == c.clientProof)
    }

    @Test func theAgentProvesItselfAndChecksTheClient() throws {
        var agent = AgentHandshake(token: "t0ken-0123456789")
        let clientNonce = HandshakeProof.randomBytes()
        let answer = try #require(try agent.receive(.hello(.init(nonce: clientNonce))))
        let agentNonce = try #require(answer.nonce)
        #expect(answer.proof == HandshakeProof.agent(token: "t0ken-0123456789", clientNonce: clientNonce, agentNonce: agentNonce))
        #expect(agent.state == .awaitingAuth)
        // A second agent picks another nonce: a recorded client proof is worth nothing there.
        var other = AgentHandshake(token: "t0ken-0123456789")
        let otherNonce = try #require(try other.receive(.hello(.init(nonce: clientNonce)))?.nonce)
        #expect(otherNonce != agentNonce)
        let proof = HandshakeProof.client(token: "t0ken-0123456789", clientNonce: clientNonce, agentNonce: agentNonce)
        #expect(throws: ProtocolError.self) { try other.receive(.auth(.init(proof: proof))) }
        try agent.receive(.auth(.init(proof: proof)))
        #expect(agent.state == .established)
    }

    @Test func newTokensAreFreshHex() {
        let a = HandshakeProof.newToken(), b = HandshakeProof.newToken()
        #expect(a.count == 64 && b.count == 64 && a != b)
        #expect(a.allSatisfy { "0123456789abcdef".contains($0) })
    }
}
