import Foundation
import TestSupport
import Yonder
import YonderLocalServers

/// A `yonder-test-agent` process on a free loopback port, for end-to-end tests. Stopped by
/// `stop()` or, at the latest, when it is freed.
final class TestAgent: Sendable {
    private let agent: LocalAgent

    var port: Int { agent.port }
    var pid: Int32 { agent.pid }

    private init(agent: LocalAgent) { self.agent = agent }

    /// Starts the agent with the extra `serve` options `arguments` and waits for its
    /// `listening` line.
    /// The handshake deadline is 60 s unless `arguments` give another: the tests run in
    /// parallel on as few as two cores, where a test process can be starved for several
    /// seconds (other suites compiling or starting servers) between its hello and its auth.
    static func start(arguments: [String] = []) throws -> TestAgent {
        let deadline = arguments.contains("--handshake-timeout") ? [] : ["--handshake-timeout", "60"]
        return TestAgent(agent: try LocalAgent.start(executable: RepositoryPaths.executable("yonder-test-agent").path, arguments: deadline + arguments))
    }

    /// Opens a connection to this agent.
    func connect(_ configuration: Connection.Configuration = Connection.Configuration()) async throws -> Connection {
        try await agent.connect(configuration: configuration)
    }

    /// Opens a connection to this agent over `stream`.
    func connect(over stream: any ByteStream) async throws -> Connection {
        try await agent.connect(over: stream, endpoint: "127.0.0.1:\(port)")
    }

    /// Sends `signal` to the agent.
    func signal(_ signal: Int32) { agent.signal(signal) }

    /// Kills the agent and waits for it to exit.
    func stop() { agent.stop() }

    /// Stops the agent with SIGTERM and waits until it has exited on its own.
    func terminate() { agent.terminate() }
}
