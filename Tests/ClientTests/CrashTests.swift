import Foundation
import Testing
import TestFixtures
import Yonder

/// User code that traps, against a real `yonder-test-agent`: the agent runs user code in
/// worker processes, so a trap fails what ran there with `crashed` and nothing else.
@Suite(.serialized) struct CrashTests {
    @Test func aTrappingFunctionFailsWithCrashedAndTheAgentLivesOn() async throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-crash-\(UUID().uuidString).log")
        defer { try? FileManager.default.removeItem(at: log) }
        let agent = try TestAgent.start(arguments: ["--log-file", log.path])
        defer { agent.stop() }
        let connection = try await agent.connect()
        let counter = try await connection.create(Counter.self, .init(start: 1))
        #expect(try await connection.run(Add.self, [1, 2]) == 3)

        let error = await #expect(throws: YonderError.self) { try await connection.run(Overflow.self, 1) }
        #expect(error?.code == .crashed)
        let message = error?.message ?? ""
        #expect(message.contains("Overflow crashed"), "\(message)")
        #expect(message.contains("SIGILL") || message.contains("SIGTRAP"), "\(message)")
        #expect(message.contains("Swift runtime trap"), "\(message)")

        // The agent, its connection and its objects live on; the next call gets a new worker.
        #expect(try await connection.run(Add.self, [1, 2]) == 3)
        #expect(try await counter.increment(by: 1) == 2)
        #expect(try await connection.info().pid == Int(agent.pid))
        // The agent's log says what crashed.
        let text = try String(contentsOf: log, encoding: .utf8)
        #expect(text.contains("the functions' worker process") && text.contains("while running Overflow"), "\(text)")
        await connection.close()
    }

    @Test func aTrappingMethodLosesOnlyItsObject() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let connection = try await agent.connect()
        let doomed = try await connection.create(Counter.self, .init(start: Int.max), name: "doomed")
        let other = try await connection.create(Counter.self, .init(start: 5), name: "other")

        let error = await #expect(throws: YonderError.self) { try await doomed.increment(by: 1) }
        #expect(error?.code == .crashed)
        let message = error?.message ?? ""
        #expect(message.contains("increment(by:)") && message.contains(doomed.id.object) && message.contains("lost"), "\(message)")

        #expect(try await other.increment(by: 1) == 6)
        let lost = await #expect(throws: YonderError.self) { try await doomed.current() }
        #expect(lost?.code == .unknownObject)
        #expect(lost?.message.contains("was lost") == true, "\(lost?.message ?? "")")
        #expect(try await connection.objects().map(\.name) == ["other"])
        // The name is free again.
        let again = try await connection.create(Counter.self, .init(start: 0), name: "doomed")
        #expect(try await again.increment(by: 2) == 2)
        #expect(try await connection.run(Add.self, [2, 2]) == 4)
        await connection.close()
    }

    @Test func aTrappingInitializerFailsTheCreateAndMakesNothing() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let connection = try await agent.connect()
        let error = await #expect(throws: YonderError.self) {
            _ = try await connection.create(Fragile.self, .init(trap: true), name: "fragile")
        }
        #expect(error?.code == .crashed)
        #expect(error?.message.contains("Fragile.init crashed") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("Fragile was told to trap") == true, "the runtime's last words: \(error?.message ?? "")")
        #expect(try await connection.objects().isEmpty)
        // The name was never taken; the next create works.
        let fragile = try await connection.create(Fragile.self, .init(trap: false), name: "fragile")
        #expect(try await fragile.alive())
        await connection.close()
    }

    @Test func eachObjectHasAProcessThatEndsWithIt() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let connection = try await agent.connect()
        #expect(try await connection.run(Add.self, [1]) == 1)
        var counters: [Counter] = []
        for start in 0..<3 { counters.append(try await connection.create(Counter.self, .init(start: start))) }
        #expect(try await waitFor({ Self.children(of: agent.pid).count == 4 }), "one for the functions, one per object")
        try await connection.release(counters[0])
        try await connection.release(counters[1])
        #expect(try await waitFor({ Self.children(of: agent.pid).count == 2 }))
        #expect(try await counters[2].increment(by: 1) == 3)
        await connection.close()

        // When the agent is gone, so are its workers.
        let workers = Self.children(of: agent.pid)
        agent.stop()
        #expect(try await waitFor({ workers.allSatisfy { kill($0, 0) != 0 } }), "workers \(workers) outlived the agent")
    }

    @Test func functionsRunInParallelInTheirWorker() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let connection = try await agent.connect()
        let input = Rendezvous.Input(key: "parallel", parties: 2)
        async let first = connection.run(Rendezvous.self, input)
        async let second = connection.run(Rendezvous.self, input)
        let (met, alsoMet) = try await (first, second)
        #expect(met && alsoMet, "two calls that compute without suspending ran one at a time")
        await connection.close()
    }

    @Test func withIsolationNoneUserCodeRunsInTheAgent() async throws {
        let agent = try TestAgent.start(arguments: ["--isolation", "none"])
        defer { agent.stop() }
        let connection = try await agent.connect()
        #expect(try await connection.run(Add.self, [1, 2]) == 3)
        let counter = try await connection.create(Counter.self, .init(start: 1), name: "here")
        #expect(try await counter.increment(by: 2) == 3)
        #expect(try await connection.lookup(Counter.self, named: "here").current() == 3)
        #expect(Self.children(of: agent.pid).isEmpty)
        try await connection.release(counter)
        let gone = await #expect(throws: YonderError.self) { try await counter.current() }
        #expect(gone?.code == .unknownObject)
        await connection.close()
    }

    /// The processes whose parent is `pid`.
    static func children(of pid: Int32) -> [Int32] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return all.compactMap { Int32($0) }.filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid
        }
    }

    private func waitFor(_ condition: () -> Bool, within seconds: Double = 5) async throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }
}
