import Foundation
import Logging
import Synchronization
import TestSupport
import Testing
import TestFixtures
import Yonder

/// The client against a real `yonder-test-agent` process over loopback TCP.
@Suite(.serialized) struct EndToEndTests {
    @Test func functionsReturnTheirResults() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let connection = try await agent.connect()
        #expect(try await connection.run(Add.self, [1, 2, 3, 4]) == 10)
        #expect(try await connection.run(Mirror.self, Point(x: 3, y: -4)) == Point(x: -3, y: 4))
        #expect(try await connection.run(Echo.self, "héllo \"quoted\"\n") == "héllo \"quoted\"\n")
        let info = try await connection.info()
        #expect(info.functions.contains("Add") && info.functions.contains("yonder.ping"))
        #expect(info.objectTypes == ["Counter", "Fragile"])
        #expect(info.pid == Int(agent.pid))
        #expect(try await connection.ping() < .seconds(1))
        #expect(try await connection.call("yonder.ping", arguments: ["a": [1, 2.5, nil]]) == ["a": [1, 2.5, nil]])
        await connection.close()
    }

    /// More calls in flight on one connection than the agent runs at once (1,024): it stops
    /// reading until some finish, and every call still gets its own answer.
    @Test func tenThousandCallsInFlightOnOneConnection() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let connection = try await agent.connect()
        let answered = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<10_000 {
                group.addTask {
                    // Half to the agent's no-op, half to a user function in its worker.
                    if index.isMultiple(of: 2) {
                        let echoed = try await connection.call("yonder.ping", arguments: .integer(Int64(index)))
                        #expect(echoed == .integer(Int64(index)))
                    } else {
                        let echoed = try await connection.run(Echo.self, String(index))
                        #expect(echoed == String(index))
                    }
                    answered.withLock { $0 += 1 }
                }
            }
            try await group.waitForAll()
        }
        #expect(answered.withLock { $0 } == 10_000)
        #expect(!connection.isClosed)
        await connection.close()
    }

    @Test func dataTravelsAsAttachmentsAndComesBackWhole() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let connection = try await agent.connect()
        #expect(connection.agent.acceptsAttachments)
        var generator = SystemRandomNumberGenerator()
        let big = Data((0..<(3 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let input = Chunks(label: "mixed", parts: [big, Data(), Data([1, 2, 3])])
        let output = try await connection.run(ReverseChunks.self, input)
        #expect(output.label == "MIXED")
        #expect(output.parts == [Data([3, 2, 1]), Data(), Data(big.reversed())])
        // Through a method of an object in its own process, too.
        let counter = try await connection.create(Counter.self, .init(start: 7))
        #expect(try await counter.reversed(big) == Chunks(label: "7", parts: [Data(big.reversed())]))
        // The untyped form sees an attachment as the base64 string it stands for.
        let echoed = try await connection.call("yonder.ping", arguments: ["data": "AQID"])
        #expect(echoed == ["data": "AQID"])
        await connection.close()
    }

    @Test func objectsKeepStateAndCanBeLookedUpFromAnotherConnection() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let first = try await agent.connect()
        let counter = try await first.create(Counter.self, .init(start: 10), name: "c1")
        #expect(try await counter.increment(by: 5) == 15)
        #expect(try await counter.increment(by: 1) == 16)
        #expect(try await first.objects().map(\.name) == ["c1"])
        await first.close()

        let second = try await agent.connect()
        let again = try await second.lookup(Counter.self, named: "c1")
        #expect(again.id == counter.id)
        #expect(try await again.current() == 16)
        // The same name again is refused, unless reuse is asked for.
        let taken = await #expect(throws: YonderError.self) { try await second.create(Counter.self, .init(start: 0), name: "c1") }
        #expect(taken?.code == .nameTaken)
        let reused = try await second.create(Counter.self, .init(start: 0), name: "c1", reuse: true)
        #expect(reused.id == counter.id)
        try await second.release(again)
        let gone = await #expect(throws: YonderError.self) { try await again.current() }
        #expect(gone?.code == .unknownObject)
        let missing = await #expect(throws: YonderError.self) { try await second.lookup(Counter.self, named: "c1") }
        #expect(missing?.code == .unknownObject)
        await second.close()
    }

    @Test func aThousandConcurrentCallsCompleteOutOfOrder() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let connection = try await agent.connect()
        let order = Locked<[Int]>([])
        let delays = (0..<1000).map { _ in Int.random(in: 0...200) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, delay) in delays.enumerated() {
                group.addTask {
                    let result = try await connection.run(Sleep.self, delay)
                    #expect(result == delay)
                    order.withLock { $0.append(index) }
                }
            }
            try await group.waitForAll()
        }
        let finished = order.withLock { $0 }
        #expect(finished.count == 1000)
        #expect(finished != Array(0..<1000))
        await connection.close()
    }

    @Test func errorsCarryTheirCode() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let connection = try await agent.connect()

        let unknown = await #expect(throws: YonderError.self) { try await connection.run(NotRegistered.self, 1) }
        #expect(unknown?.code == .unknownFunction)
        #expect(unknown?.operation == "call NotRegistered")

        let decode = await #expect(throws: YonderError.self) { try await connection.run(MirrorWithTextY.self, .init(x: 1, y: "one")) }
        #expect(decode?.code == .decodeFailed)
        #expect(decode?.path == ["arguments", "y"])

        let remote = await #expect(throws: YonderError.self) { try await connection.run(Fail.self, "on purpose") }
        #expect(remote?.code == .remoteError)
        #expect(remote?.errorType?.contains("FixtureError") == true)
        #expect(remote?.message.contains("on purpose") == true)

        let counter = try await connection.create(Counter.self, .init(start: 0))
        let thrown = await #expect(throws: YonderError.self) { try await counter.fail("from a method") }
        #expect(thrown?.code == .remoteError)
        try await connection.release(counter)
        let released = await #expect(throws: YonderError.self) { try await counter.increment(by: 1) }
        #expect(released?.code == .unknownObject)
        // The connection is still usable after all of these.
        #expect(try await connection.run(Add.self, [2, 2]) == 4)
        await connection.close()
    }

    @Test func cancellingTheTaskCancelsTheCallInTheAgent() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        var configuration = Connection.Configuration()
        configuration.cancellationGrace = .seconds(30)  // so a prompt throw can only be the agent's answer
        let connection = try await agent.connect(configuration)
        let call = Task { try await connection.run(Sleep.self, 30_000) }
        try await Task.sleep(for: .milliseconds(200))
        let start = ContinuousClock.now
        call.cancel()
        let error = await #expect(throws: YonderError.self) { try await call.value }
        #expect(error?.code == .cancelled)
        #expect(ContinuousClock.now - start < .seconds(2))
        #expect(try await connection.run(Add.self, [1]) == 1)
        await connection.close()
    }

    @Test func timeoutsAreEnforcedByTheAgentAndByTheClient() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        var configuration = Connection.Configuration()
        configuration.deadlineMargin = .milliseconds(300)
        configuration.keepAliveInterval = nil
        let connection = try await agent.connect(configuration)

        var start = ContinuousClock.now
        let byAgent = await #expect(throws: YonderError.self) { try await connection.run(Sleep.self, 30_000, timeout: .milliseconds(300)) }
        #expect(byAgent?.code == .timedOut)
        #expect(ContinuousClock.now - start < .seconds(3))

        // A stopped agent cannot answer: the client's own deadline fires.
        agent.signal(SIGSTOP)
        defer { agent.signal(SIGCONT) }
        // A busy machine may take a moment to stop every thread of the agent.
        for _ in 0..<100 {
            let status = (try? String(contentsOfFile: "/proc/\(agent.pid)/status", encoding: .utf8)) ?? ""
            if status.contains("State:\tT") { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        start = ContinuousClock.now
        let byClient = await #expect(throws: YonderError.self) { try await connection.run(Add.self, [1], timeout: .milliseconds(300)) }
        #expect(byClient?.code == .timedOut)
        #expect(byClient?.message.contains("no answer") == true)
        #expect(ContinuousClock.now - start < .seconds(3))
        agent.signal(SIGCONT)
        #expect(try await connection.run(Add.self, [5]) == 5)
        await connection.close()
    }

    @Test func killingTheAgentFailsEveryPendingCallAtOnce() async throws {
        let agent = try TestAgent.start()
        let connection = try await agent.connect()
        let failures = Locked<[(YonderError.Code, ContinuousClock.Instant)]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    do {
                        _ = try await connection.run(Sleep.self, 60_000)
                    } catch let error as YonderError {
                        failures.withLock { $0.append((error.code, .now)) }
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(300))
            agent.stop()
            try await group.waitForAll()
        }
        let all = failures.withLock { $0 }
        #expect(all.count == 50)
        #expect(all.allSatisfy { $0.0 == .connectionLost })
        let times = all.map(\.1)
        if let first = times.min(), let last = times.max() { #expect(last - first < .milliseconds(200)) }
        let after = await #expect(throws: YonderError.self) { try await connection.run(Add.self, [1]) }
        #expect(after?.code == .connectionLost)
    }

    /// `terminate()` returns once the agent has exited on SIGTERM and been reaped (its pid is
    /// gone, not a zombie); the connection is lost, and stopping it again does nothing.
    @Test func terminatingTheAgentWaitsUntilItHasExited() async throws {
        let agent = try TestAgent.start()
        let connection = try await agent.connect()
        #expect(try await connection.run(Add.self, [2, 3]) == 5)
        agent.terminate()
        #expect(kill(agent.pid, 0) == -1 && errno == ESRCH)
        let after = await #expect(throws: YonderError.self) { try await connection.run(Add.self, [1]) }
        #expect(after?.code == .connectionLost)
        agent.terminate()
        agent.stop()
    }

    @Test func execStreamsOutputThenTheExitStatus() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let connection = try await agent.connect()
        let result = try await connection.exec(
            ["sh", "-c", "echo out; echo err >&2; cat; echo \"$GREETING\"; pwd; exit 3"],
            environment: ["GREETING": "hi"], workingDirectory: "/tmp", standardInput: Array("in\n".utf8)
        ).collect()
        #expect(result.outputText == "out\nin\nhi\n/tmp\n")
        #expect(result.errorText == "err\n")
        #expect(result.status == ExecStatus(exitCode: 3, signal: nil))

        // Output arrives while the command still runs.
        let start = ContinuousClock.now
        var events: [(ExecEvent, Duration)] = []
        for try await event in connection.exec(["sh", "-c", "echo first; sleep 1; echo second"]) {
            events.append((event, ContinuousClock.now - start))
        }
        #expect(events.first?.0 == .standardOutput(Array("first\n".utf8)))
        #expect((events.first?.1 ?? .zero) < .milliseconds(800))
        #expect(events.last?.0 == .exit(ExecStatus(exitCode: 0, signal: nil)))

        let missing = await #expect(throws: YonderError.self) { try await connection.exec(["no-such-command-here"]).collect() }
        #expect(missing?.code == .execFailed)
        await connection.close()
    }

    @Test func aFiftyMebibyteFileGoesUpAndComesBackIntact() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let connection = try await agent.connect()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-client-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<(50 << 20) / 8).flatMap { _ in withUnsafeBytes(of: generator.next()) { Array($0) } }
        let source = folder.appendingPathComponent("source.bin")
        try Data(bytes).write(to: source)
        let remote = folder.appendingPathComponent("remote/copy.bin").path

        #expect(try await connection.putFile(from: source.path, to: remote, mode: 0o600) == 50 << 20)
        let back = folder.appendingPathComponent("back.bin")
        #expect(try await connection.getFile(remote, to: back.path) == 50 << 20)

        let local = try sha256(source.path)
        #expect(try sha256(back.path) == local)
        let remoteSum = try await connection.exec(["sha256sum", remote]).collect().outputText
        #expect(remoteSum.hasPrefix(local))

        // Small files round-trip in memory too, including the empty one.
        try await connection.putFile(Array("hello".utf8), to: remote)
        #expect(try await connection.getFile(remote) == Array("hello".utf8))
        try await connection.putFile([], to: remote)
        #expect(try await connection.getFile(remote) == [])
        let missing = await #expect(throws: YonderError.self) { try await connection.getFile(folder.appendingPathComponent("absent").path) }
        #expect(missing?.code == .fileError)
        await connection.close()
    }

    @Test func aWrongTokenIsRefusedClearly() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let error = await #expect(throws: YonderError.self) {
            try await Connection.connect(port: agent.port, token: "not-the-token-\(agent.port)")
        }
        #expect(error?.code == .agentNotVerified)
        #expect(error?.description.contains("token") == true)
        #expect(error?.description.contains("not-the-token") == false)
    }

    @Test func logLinesArriveBeforeTheResult() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let connection = try await agent.connect()
        let lines = Locked<[RemoteLogRecord]>([])
        let count = try await connection.run(LogLines.self, 20) { record in lines.withLock { $0.append(record) } }
        let received = lines.withLock { $0 }
        #expect(count == 20)
        #expect(received.map(\.message) == (0..<20).map { "line \($0)" })
        #expect(received.allSatisfy { $0.level == .info && $0.operation == "call LogLines" })
        await connection.close()
    }
}

/// A function the test agent does not register.
struct NotRegistered: RemoteFunction {
    static func run(_ input: Int) async throws -> Int { input }
}

/// Calls the agent's `Mirror` with a `y` of the wrong type.
struct MirrorWithTextY: RemoteFunction {
    struct Input: Codable, Sendable {
        var x: Int
        var y: String
    }
    static var remoteName: String { "Mirror" }
    static func run(_ input: Input) async throws -> Point { Point(x: 0, y: 0) }
}

/// The SHA-256 of a local file, as `sha256sum` prints it.
func sha256(_ path: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    process.arguments = [path]
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
}
