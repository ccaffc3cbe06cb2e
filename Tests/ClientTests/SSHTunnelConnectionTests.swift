import Foundation
import Testing
import TestFixtures
import TestSupport
import Yonder
import YonderLocalServers
import YonderCluster
import YonderSSH

/// The client runtime over an SSH tunnel to an agent on the server's loopback: the path a
/// cluster takes.
@Suite(.serialized, .enabled(if: SSHServerFixture.shouldRun))
struct SSHTunnelConnectionTests {
    /// An sshd, a test agent beside it, a session and a tunnel to the agent's port.
    static func tunnelToAgent() async throws -> (SSHServerFixture, LocalAgent, SSHSession, SSHTunnel) {
        let server = try SSHServerFixture()
        let agent = try LocalAgent.start(executable: RepositoryPaths.executable("yonder-test-agent").path)
        let session = try await SSHSession.connect(SSHConfiguration(
            host: server.host, port: server.port, user: server.user,
            authentication: [.privateKey(path: server.clientKey)],
            hostKeys: .knownHosts(server.knownHosts)))
        let tunnel = try await session.openTunnel(host: "127.0.0.1", port: agent.port)
        return (server, agent, session, tunnel)
    }

    @Test func callsObjectsAndConcurrencyThroughATunnel() async throws {
        let (server, agent, session, tunnel) = try await Self.tunnelToAgent()
        defer {
            agent.stop()
            server.stop()
        }
        let connection = try await agent.connect(over: tunnel, endpoint: "agent via SSH")
        #expect(try await connection.run(Add.self, [1, 2, 3]) == 6)
        let counter = try await connection.create(Counter.self, Counter.Arguments(start: 1), name: "over-ssh")
        #expect(try await counter.increment(by: 41) == 42)
        let sums = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<200 { group.addTask { try await connection.run(Add.self, [index, 1]) } }
            return try await group.reduce(0, +)
        }
        #expect(sums == (0..<200).reduce(0) { $0 + $1 + 1 })
        let big = String(repeating: "x", count: 5 << 20)
        #expect(try await connection.run(Echo.self, big) == big)
        await connection.close()
        await session.close()
    }

    /// Calls from a task that prefers the session's thread run there, many at once and with
    /// large values; once the session has ended, pinned work runs on the global executor.
    @Test func callsPinnedToTheSessionThread() async throws {
        let (server, agent, session, tunnel) = try await Self.tunnelToAgent()
        defer {
            agent.stop()
            server.stop()
        }
        let connection = try await agent.connect(over: tunnel, endpoint: "agent via SSH")
        try await ConnectionExecutorTests.pinnedCalls(on: connection) { tunnel.isOnSessionThread }
        try await ConnectionExecutorTests.pinnedCallFails(on: connection) { agent.stop() }
        await session.close()
        let after = try await withTaskExecutorPreference(try #require(connection.executor)) {
            try await Task.sleep(for: .milliseconds(10))
            return tunnel.isOnSessionThread
        }
        #expect(!after)
    }

    @Test func aWrongTokenThroughTheTunnelIsRefused() async throws {
        let (server, agent, session, tunnel) = try await Self.tunnelToAgent()
        defer {
            agent.stop()
            server.stop()
        }
        let error = await #expect(throws: YonderError.self) {
            _ = try await Connection.open(over: tunnel, token: "wrong", endpoint: "agent via SSH")
        }
        #expect(error?.code == .agentNotVerified)
        await session.close()
    }
}
