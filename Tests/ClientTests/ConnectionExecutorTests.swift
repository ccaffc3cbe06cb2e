import Foundation
import Testing
import TestFixtures
import Yonder

/// Calls made from a task that prefers the connection's executor (`Connection.executor`): they
/// run on the stream's own thread, concurrently, with large values, and fail cleanly when the
/// agent goes away.
@Suite(.serialized) struct ConnectionExecutorTests {
    @Test func pinnedCallsRunOnTheEventLoop() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let stream = try await TCPByteStream.connect(host: "127.0.0.1", port: agent.port)
        let connection = try await agent.connect(over: stream)
        try await Self.pinnedCalls(on: connection) { stream.isOnItsEventLoop }
        #expect(!stream.isOnItsEventLoop)
        await connection.close()
    }

    /// Runs calls from a task that prefers `connection`'s executor, checking with `onThread`
    /// that each resumes on the stream's thread: one after another, 100 at once from child
    /// tasks (which inherit the preference), and a large value that waits for the socket.
    static func pinnedCalls(on connection: Connection, onThread: @escaping @Sendable () -> Bool) async throws {
        let executor = try #require(connection.executor)
        try await withTaskExecutorPreference(executor) {
            for index in 0..<200 {
                #expect(try await connection.run(Add.self, [index, 1]) == index + 1)
                #expect(onThread())
            }
            let sums = try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<100 { group.addTask { try await connection.run(Add.self, [index, 1]) } }
                return try await group.reduce(0, +)
            }
            #expect(sums == (0..<100).reduce(0) { $0 + $1 + 1 })
            let parts = [Data(repeating: 7, count: 6 << 20), Data((0..<1000).map { UInt8($0 % 251) })]
            let back = try await connection.run(ReverseChunks.self, Chunks(label: "big", parts: parts))
            #expect(back.parts == parts.reversed().map { Data($0.reversed()) })
            #expect(onThread())
        }
    }

    /// A pinned call waits while `stop` stops the agent: it fails with `connectionLost`.
    static func pinnedCallFails(on connection: Connection, when stop: () -> Void) async throws {
        let waiting = Task(executorPreference: try #require(connection.executor)) { try await connection.run(Sleep.self, 60_000) }
        try await Task.sleep(for: .milliseconds(300))
        stop()
        let error = await #expect(throws: YonderError.self) { try await waiting.value }
        #expect(error?.code == .connectionLost)
    }

    @Test func aPinnedCallFailsWhenTheAgentDies() async throws {
        let agent = try TestAgent.start()
        defer { agent.stop() }
        let connection = try await agent.connect()
        try await Self.pinnedCallFails(on: connection) { agent.stop() }
        // The loop still runs pinned work after the connection is gone.
        let after = try await withTaskExecutorPreference(try #require(connection.executor)) {
            try await Task.sleep(for: .milliseconds(10))
            return connection.isClosed
        }
        #expect(after)
    }
}
