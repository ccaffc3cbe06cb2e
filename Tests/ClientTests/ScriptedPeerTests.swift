import Foundation
import Synchronization
import TestSupport
import Testing
import Yonder
import YonderProtocol

/// Client behaviours checked against `ScriptedAgentPeer`, for what a real agent cannot be
/// made to do on demand.
@Suite(.serialized) struct ScriptedPeerTests {
    var noKeepAlive: Connection.Configuration {
        var configuration = Connection.Configuration()
        configuration.keepAliveInterval = nil
        return configuration
    }

    @Test func repliesOutOfOrderReachTheirCallers() async throws {
        let held = HeldCalls()
        let peer = try ScriptedAgentPeer { message, send in
            guard case .call(let call) = message else { return }
            // Answer in reverse order once all 50 have arrived.
            if let batch = held.add(call, send, until: 50) {
                for (call, send) in batch.reversed() { send(.result(.init(id: call.id, value: call.arguments))) }
            }
        }
        defer { peer.stop() }
        let connection = try await Connection.connect(port: peer.port, token: "secret", configuration: noKeepAlive)
        #expect(connection.agent.name == "scripted-peer")
        #expect(connection.agent.maximumFrameLength == 1 << 20)
        try await withThrowingTaskGroup(of: (Int, JSONValue).self) { group in
            for i in 0..<50 {
                group.addTask { (i, try await connection.call("echo", arguments: .integer(Int64(i)))) }
            }
            for try await (i, value) in group { #expect(value == .integer(Int64(i))) }
        }
        await connection.close()
    }

    @Test func aCallThatGetsNoAnswerTimesOutOnTheClient() async throws {
        let peer = try ScriptedAgentPeer { _, _ in }
        defer { peer.stop() }
        var configuration = noKeepAlive
        configuration.deadlineMargin = .milliseconds(100)
        let connection = try await Connection.connect(port: peer.port, token: "secret", configuration: configuration)
        let start = ContinuousClock.now
        let error = await #expect(throws: YonderError.self) {
            try await connection.call("never", timeout: .milliseconds(200))
        }
        #expect(error?.code == .timedOut)
        // Bounded far above the 0.3 s it takes, so that a loaded machine cannot fail it:
        // without the client-side deadline the call would wait forever.
        #expect(ContinuousClock.now - start < .seconds(15))
        // The agent was sent the timeout, then told to stop (the cancel is sent as the call
        // fails; on a loaded machine it may reach the peer a little later).
        let cancelled = { peer.messages.contains { if case .cancel = $0 { true } else { false } } }
        for _ in 0..<100 where !cancelled() { try await Task.sleep(for: .milliseconds(50)) }
        #expect(cancelled())
        #expect(peer.messages.contains { if case .call(let call) = $0 { call.timeout == 0.2 } else { false } })
        await connection.close()
    }

    @Test func aMalformedFrameFailsTheConnection() async throws {
        let peer = try ScriptedAgentPeer { _, _ in }
        defer { peer.stop() }
        let connection = try await Connection.connect(port: peer.port, token: "secret", configuration: noKeepAlive)
        let pending = Task { try await connection.call("slow") }
        try await Task.sleep(for: .milliseconds(100))
        peer.sendRaw([0, 0, 0, 3] + Array("[1]".utf8))
        let error = await #expect(throws: YonderError.self) { try await pending.value }
        #expect(error?.code == .notAnObject)
        #expect(connection.isClosed)
    }

    @Test func theKeepAliveNoticesASilentAgent() async throws {
        let peer = try ScriptedAgentPeer { _, _ in }  // never answers ping
        defer { peer.stop() }
        var configuration = Connection.Configuration()
        configuration.keepAliveInterval = .milliseconds(100)
        configuration.keepAliveTimeout = .milliseconds(200)
        let connection = try await Connection.connect(port: peer.port, token: "secret", configuration: configuration)
        let error = await #expect(throws: YonderError.self) { try await connection.call("slow") }
        #expect(error?.code == .connectionLost)
        #expect(error?.message.contains("keep-alive") == true)
    }

    @Test func aPeerThatCannotProveTheTokenGetsNothingSecret() async throws {
        let peer = try ScriptedAgentPeer { _, _ in }
        defer { peer.stop() }
        let error = await #expect(throws: YonderError.self) {
            try await Connection.connect(port: peer.port, token: "wrong-token-value", configuration: noKeepAlive)
        }
        #expect(error?.code == .agentNotVerified)
        #expect(error?.description.contains("Nothing secret was sent") == true)
        #expect(error?.description.contains("wrong-token-value") == false)
        // The peer saw the client's hello (a nonce) and nothing after it: no auth, no call.
        try await Task.sleep(for: .milliseconds(100))
        let received = peer.messages
        #expect(received.map(\.type) == ["hello"])
        let wire = received.map { String(decoding: $0.encodedPayload(), as: UTF8.self) }.joined()
        #expect(!wire.contains("wrong-token-value"))
    }

    /// A file's pieces after the first go at their offsets, several in flight at once, to an
    /// agent that answers with `offset`; to one that does not (older than that argument, which
    /// it would ignore), they are appended one after another. Either way the file is whole.
    @Test(.timeLimit(.minutes(1)), arguments: [true, false]) func filePiecesGoAtOnceOnlyToAnAgentThatKnowsOffsets(knowsOffsets: Bool) async throws {
        struct Piece { var append: Bool; var offset: Int?; var bytes: [UInt8] }
        let pieces = Mutex<[Piece]>([])
        let file = Mutex<[UInt8]>([])
        let held = HeldCalls()
        let replies = Mutex<[Int: Message]>([:])
        let peer = try ScriptedAgentPeer { message, send in
            guard case .call(let call) = message, call.function == "yonder.putFile",
                case .string(let text)? = call.arguments["data"], let data = Data(base64Encoded: text)
            else { return }
            let append = call.arguments["append"] == .bool(true)
            var offset: Int?
            if case .integer(let at)? = call.arguments["offset"] { offset = Int(at) }
            let index = pieces.withLock { $0.append(Piece(append: append, offset: offset, bytes: [UInt8](data))); return $0.count }
            let (size, start) = file.withLock { file -> (Int, Int) in
                let start = offset ?? (append ? file.count : 0)
                if !append, offset == nil { file = [] }
                if file.count < start + data.count { file += [UInt8](repeating: 0, count: start + data.count - file.count) }
                file.replaceSubrange(start..<start + data.count, with: data)
                return (file.count, start)
            }
            var value: [String: JSONValue] = ["size": .integer(Int64(size))]
            if knowsOffsets { value["offset"] = .integer(Int64(start)) }
            let reply = Message.result(.init(id: call.id, value: .object(value)))
            // With offsets, the three pieces after the first are answered only once all three
            // have arrived: the client must have sent them without waiting.
            guard knowsOffsets, index > 1 else { return send(reply) }
            replies.withLock { $0[call.id] = reply }
            if let batch = held.add(call, send, until: 3) {
                for (call, send) in batch { replies.withLock { $0[call.id] }.map(send) }
            }
        }
        defer { peer.stop() }
        let connection = try await Connection.connect(port: peer.port, token: "secret", configuration: noKeepAlive)
        let piece = connection.fileChunkLength
        let source = (0..<(3 * piece + 1000)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        #expect(try await connection.putFile(source, to: "/tmp/x") == source.count)
        #expect(file.withLock { $0 } == source)
        let sent = pieces.withLock { $0 }
        #expect(sent.count == 4)
        #expect(sent.first.map { !$0.append && $0.offset == nil } == true)
        if knowsOffsets {
            #expect(Set(sent.dropFirst().compactMap(\.offset)) == [piece, 2 * piece, 3 * piece])
            #expect(sent.dropFirst().allSatisfy { !$0.append })
        } else {
            #expect(sent.dropFirst().allSatisfy { $0.append && $0.offset == nil })
            #expect(sent.flatMap(\.bytes) == source)
        }
        await connection.close()
    }

    /// `getFile` asks for the pieces after the first at once, and puts them in order however
    /// their answers arrive (here the last first).
    @Test(.timeLimit(.minutes(1))) func filePiecesReadAtOnceArriveInOrder() async throws {
        let content = Mutex<[UInt8]>([])
        let held = HeldCalls()
        let peer = try ScriptedAgentPeer { message, send in
            guard case .call(let call) = message, call.function == "yonder.getFile",
                case .integer(let offset)? = call.arguments["offset"], case .integer(let length)? = call.arguments["length"]
            else { return }
            let file = content.withLock { $0 }
            let start = min(file.count, Int(offset))
            let end = min(file.count, start + Int(length))
            let value: JSONValue = .object([
                "data": .string(Data(file[start..<end]).base64EncodedString()),
                "size": .integer(Int64(file.count)), "eof": .bool(end == file.count),
            ])
            guard offset > 0 else { return send(.result(.init(id: call.id, value: value))) }
            let answered = Message.Call(id: call.id, function: call.function, arguments: value)
            if let batch = held.add(answered, send, until: 3) {
                for (call, send) in batch.reversed() { send(.result(.init(id: call.id, value: call.arguments))) }
            }
        }
        defer { peer.stop() }
        let connection = try await Connection.connect(port: peer.port, token: "secret", configuration: noKeepAlive)
        let source = (0..<(3 * connection.fileChunkLength + 1000)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) }
        content.withLock { $0 = source }
        #expect(try await connection.getFile("/tmp/x") == source)
        #expect(peer.messages.count { if case .call = $0 { true } else { false } } == 4)
        await connection.close()
    }

    @Test func aDroppedStreamFailsEveryPendingCallAtOnce() async throws {
        let peer = try ScriptedAgentPeer { _, _ in }
        defer { peer.stop() }
        let connection = try await Connection.connect(port: peer.port, token: "secret", configuration: noKeepAlive)
        let codes = Locked<[YonderError.Code]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    do { _ = try await connection.call("slow") } catch let error as YonderError { codes.withLock { $0.append(error.code) } }
                }
            }
            try await Task.sleep(for: .milliseconds(200))
            peer.dropClient()
            try await group.waitForAll()
        }
        #expect(codes.withLock { $0 } == Array(repeating: .connectionLost, count: 20))
    }
}

/// Collects calls until `count` have arrived.
final class HeldCalls: Sendable {
    private let calls = Mutex<[(Message.Call, ScriptedAgentPeer.Send)]>([])

    func add(_ call: Message.Call, _ send: @escaping ScriptedAgentPeer.Send, until count: Int) -> [(Message.Call, ScriptedAgentPeer.Send)]? {
        calls.withLock { calls in
            calls.append((call, send))
            return calls.count == count ? calls : nil
        }
    }
}

