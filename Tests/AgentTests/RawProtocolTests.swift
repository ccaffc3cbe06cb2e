import Foundation
import Testing
import TestSupport
import YonderProtocol

/// Tests that speak raw frames to a spawned `yonder-test-agent`: what a well-behaved client
/// never sends, and the agent's process contract.
@Suite(.serialized) struct RawProtocolTests {
    let agent: AgentProcess

    init() throws {
        agent = try AgentProcess(executable: RepositoryPaths.executable("yonder-test-agent"), arguments: ["--build", "raw-tests"])
    }

    func connected() throws -> RawFrameClient {
        let client = try RawFrameClient(port: agent.port)
        client.hello(token: agent.token)
        guard case .hello(let hello)? = try client.receive() else {
            throw RawFrameError("no hello from the agent")
        }
        #expect(hello.build == "raw-tests")
        #expect(client.agentProved == true)
        return client
    }

    func ping(_ client: RawFrameClient, id: Int) throws -> JSONValue? {
        client.send(.call(Message.Call(id: id, function: "yonder.ping", arguments: .integer(Int64(id)))))
        if case .result(let reply) = try client.reply(to: id).reply { return reply.value }
        return nil
    }

    @Test func theListeningLineDescribesTheAgent() {
        #expect(agent.listening["host"] as? String == "127.0.0.1")
        #expect(agent.listening["name"] as? String == "yonder-agent")
        #expect(agent.listening["protocol"] as? Int == 2)
        #expect(agent.listening["pid"] as? Int == Int(agent.pid))
    }

    @Test func garbageFromOneClientNeverDisturbsAnother() async throws {
        let good = try connected()
        var generator = SystemRandomNumberGenerator()
        let attacks: [[UInt8]] = [
            (0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) },
            [0xFF, 0xFF, 0xFF, 0xFF] + Array(repeating: 0x41, count: 100),
            [0, 0, 0, 0],
            [0, 0, 0, 50] + Array(#"{"type":"call","id":1,"#.utf8),
            [0, 0, 0, 5] + Array("[1,2]".utf8),
            [0, 0, 0, 3] + [0xC3, 0x28, 0x7B],
        ]
        for (round, attack) in attacks.enumerated() {
            // Before hello, and after a valid hello.
            let early = try RawFrameClient(port: agent.port)
            early.send(attack)
            let late = try connected()
            late.send(attack)
            if attack.count > 8 && round == 0 {
                _ = try? late.receive()
            }
            #expect(try ping(good, id: round) == .integer(Int64(round)))
        }
        // Many short-lived garbage connections at once.
        for _ in 0..<50 {
            let client = try RawFrameClient(port: agent.port)
            client.send((0..<64).map { _ in UInt8.random(in: 0...255, using: &generator) })
        }
        #expect(try ping(good, id: 100) == .integer(100))
        #expect(try ping(try connected(), id: 1) == .integer(1))
    }

    @Test func aBadFrameGetsAnErrorWithoutIDThenTheConnectionCloses() throws {
        let client = try connected()
        client.send([0, 0, 0, 0])
        guard case .error(let failure)? = try client.receive() else {
            Issue.record("expected an error")
            return
        }
        #expect(failure.id == nil)
        #expect(failure.error.code == .emptyFrame)
        #expect(try client.receive() == nil)
    }

    @Test func messageErrorsAfterHelloAreNotFatalAndEchoTheID() throws {
        let client = try connected()
        client.send(Frame.encode(payload: Array(#"{"type":"teleport","id":41}"#.utf8)))
        guard case .error(let unknown)? = try client.receive() else {
            Issue.record("expected an error")
            return
        }
        #expect(unknown.id == 41)
        #expect(unknown.error.code == .unknownType)
        client.send(Frame.encode(payload: Array(#"{"type":"call","id":42}"#.utf8)))
        guard case .error(let missing)? = try client.receive() else {
            Issue.record("expected an error")
            return
        }
        #expect(missing.id == 42)
        #expect(missing.error.code == .invalidMessage)
        #expect(missing.error.path == ["function"])
        #expect(try ping(client, id: 43) == .integer(43))
    }

    @Test func theHandshakeRefusesWhatComesBeforeAValidHello() throws {
        let early = try RawFrameClient(port: agent.port)
        early.send(.call(Message.Call(id: 1, function: "yonder.ping")))
        guard case .error(let refused)? = try early.receive() else {
            Issue.record("expected hello_required")
            return
        }
        #expect(refused.error.code == .helloRequired)
        #expect(try early.receive() == nil)

        let wrong = try RawFrameClient(port: agent.port)
        wrong.hello(token: "not-" + agent.token)
        guard case .hello? = try wrong.receive() else {
            Issue.record("expected the agent's hello")
            return
        }
        #expect(wrong.agentProved == false)
        guard case .error(let unauthorized)? = try wrong.receive() else {
            Issue.record("expected unauthorized")
            return
        }
        #expect(unauthorized.error.code == .unauthorized)
        #expect(!unauthorized.error.message.contains(agent.token))
        #expect(try wrong.receive() == nil)

        let future = try RawFrameClient(port: agent.port)
        future.send(.hello(Message.Hello(protocolVersion: 1, nonce: HandshakeProof.randomBytes())))
        guard case .error(let version)? = try future.receive() else {
            Issue.record("expected unsupported_version")
            return
        }
        #expect(version.error.code == .unsupportedVersion)
    }

    @Test func attachmentsGoRawToAClientThatAcceptsThemAndAsBase64ToOneThatDoesNot() throws {
        let bytes = Data([0, 255, 10, 13, 34, 92])
        let reference: JSONValue = ["$attachment": 0]
        // This client announced no binary: the echo carries the bytes inline, as base64.
        let plain = try connected()
        plain.send(.call(Message.Call(id: 1, function: "yonder.ping", arguments: ["blob": reference], attachments: [bytes])))
        guard case .result(let inline) = try plain.reply(to: 1).reply else {
            Issue.record("expected a result")
            return
        }
        #expect(inline.value == ["blob": .string(bytes.base64EncodedString())])
        #expect(inline.attachments.isEmpty)
        // A typed function reads base64 from such a client, and answers it in base64.
        let parts: JSONValue = [.string(Data([1, 2]).base64EncodedString()), ""]
        plain.send(.call(Message.Call(id: 2, function: "ReverseChunks", arguments: ["label": "a", "parts": parts])))
        guard case .result(let reversed) = try plain.reply(to: 2).reply else {
            Issue.record("expected a result")
            return
        }
        #expect(reversed.value == ["label": "A", "parts": ["", .string(Data([2, 1]).base64EncodedString())]])

        // This one did: the bytes come back as an attachment, from the worker too.
        let client = try RawFrameClient(port: agent.port)
        client.hello(token: agent.token, binary: true)
        guard case .hello(let hello)? = try client.receive() else {
            Issue.record("expected the agent's hello")
            return
        }
        #expect(hello.binary)
        client.send(.call(Message.Call(id: 3, function: "yonder.ping", arguments: ["blob": reference], attachments: [bytes])))
        guard case .result(let echoed) = try client.reply(to: 3).reply else {
            Issue.record("expected a result")
            return
        }
        #expect(echoed.value == ["blob": reference])
        #expect(echoed.attachments == [bytes])
        client.send(.call(Message.Call(
            id: 4, function: "ReverseChunks", arguments: ["label": "b", "parts": [["$attachment": 1], ["$attachment": 0]]],
            attachments: [Data([1, 2, 3]), Data([4, 5])])))
        guard case .result(let binary) = try client.reply(to: 4).reply else {
            Issue.record("expected a result")
            return
        }
        #expect(binary.value == ["label": "B", "parts": [["$attachment": 0], ["$attachment": 1]]])
        #expect(binary.attachments == [Data([3, 2, 1]), Data([5, 4])])
    }

    @Test func anAttachmentThatDoesNotMatchItsAnnouncementEndsTheConnection() throws {
        let client = try connected()
        // Announces 5 bytes, sends a frame of 3.
        client.send(Array(#"{"type":"call","id":1,"function":"yonder.ping","attachments":[5]}"#.utf8).framed + [0, 0, 0, 3, 1, 2, 3])
        guard case .error(let failure)? = try client.receive() else {
            Issue.record("expected invalid_attachment")
            return
        }
        #expect(failure.id == nil)
        #expect(failure.error.code == .invalidAttachment)
        #expect(try client.receive() == nil)
        // Before auth, attachments are refused outright.
        let early = try RawFrameClient(port: agent.port)
        early.send(Array(#"{"type":"hello","protocol":2,"nonce":"AAAAAAAAAAAAAAAAAAAAAA==","attachments":[1]}"#.utf8).framed + [0, 0, 0, 1, 0])
        guard case .error(let refused)? = try early.receive() else {
            Issue.record("expected invalid_attachment")
            return
        }
        #expect(refused.error.code == .invalidAttachment)
    }

    @Test func aRunningIDCannotBeReused() throws {
        let client = try connected()
        client.send(.call(Message.Call(id: 7, function: "Sleep", arguments: 300)))
        client.send(.call(Message.Call(id: 7, function: "yonder.ping", arguments: "again")))
        guard case .error(let duplicate) = try client.reply(to: 7).reply else {
            Issue.record("expected duplicate_id first")
            return
        }
        #expect(duplicate.error.code == .duplicateID)
        guard case .result(let slept) = try client.reply(to: 7).reply else {
            Issue.record("expected the first request's result")
            return
        }
        #expect(slept.value == 300)
    }

    @Test func execReportsSignalsWorkingFolderInputAndMissingPrograms() throws {
        let client = try connected()
        client.send(.call(Message.Call(id: 1, function: "yonder.exec", arguments: ["command": ["sh", "-c", "kill -9 $$"]])))
        guard case .result(let killed) = try client.reply(to: 1).reply else {
            Issue.record("expected a result")
            return
        }
        #expect(killed.value == ["exitCode": nil, "signal": 9])

        let input = Data("hello from stdin".utf8).base64EncodedString()
        client.send(.call(Message.Call(id: 2, function: "yonder.exec", arguments: [
            "command": ["sh", "-c", "pwd; cat"], "cwd": "/usr", "stdin": .string(input),
        ])))
        let (reply, before) = try client.reply(to: 2)
        let output = before.reduce(into: [UInt8]()) { bytes, message in
            if case .output(let piece) = message, piece.stream == .stdout { bytes += piece.data }
        }
        #expect(String(decoding: output, as: UTF8.self) == "/usr\nhello from stdin")
        guard case .result(let status) = reply else {
            Issue.record("expected a result")
            return
        }
        #expect(status.value == ["exitCode": 0, "signal": nil])

        client.send(.call(Message.Call(id: 3, function: "yonder.exec", arguments: ["command": ["no-such-program-here"]])))
        guard case .error(let missing) = try client.reply(to: 3).reply else {
            Issue.record("expected exec_failed")
            return
        }
        #expect(missing.error.code == .execFailed)

        client.send(.call(Message.Call(id: 4, function: "yonder.exec", arguments: ["command": ["true"], "cwd": "/no/such/folder"])))
        guard case .error(let badFolder) = try client.reply(to: 4).reply else {
            Issue.record("expected exec_failed")
            return
        }
        #expect(badFolder.error.code == .execFailed)
    }

    @Test func sigtermSaysGoodbyeAndExitsZero() throws {
        let own = try AgentProcess(executable: RepositoryPaths.executable("yonder-agent"))
        let client = try RawFrameClient(port: own.port)
        client.hello(token: own.token)
        guard case .hello? = try client.receive() else {
            Issue.record("no hello")
            return
        }
        own.signal(SIGTERM)
        guard case .goodbye? = try client.receive() else {
            Issue.record("expected goodbye")
            return
        }
        #expect(own.waitForExit() == 0)
    }
}

extension Array where Element == UInt8 {
    /// These bytes as one frame: a 4-byte big-endian length, then the bytes.
    var framed: [UInt8] {
        Swift.withUnsafeBytes(of: UInt32(count).bigEndian, Array.init) + self
    }
}
