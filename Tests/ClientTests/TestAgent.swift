import Foundation
import TestSupport
import Yonder

/// A `yonder-test-agent` process on a free loopback port, for end-to-end tests. Stopped by
/// `stop()` or, at the latest, when it is freed.
final class TestAgent: Sendable {
    let port: Int
    let token: String
    private let process: Process

    var pid: Int32 { process.processIdentifier }

    private init(process: Process, port: Int, token: String) {
        self.process = process
        self.port = port
        self.token = token
    }

    deinit { stop() }

    /// Starts the agent and waits for its `listening` line.
    static func start() throws -> TestAgent {
        let token = "t-\(UInt64.random(in: 1...UInt64.max))"
        let process = Process()
        process.executableURL = RepositoryPaths.executable("yonder-test-agent")
        process.arguments = ["serve", "--host", "127.0.0.1", "--port", "0", "--token-env", "YONDER_TEST_TOKEN"]
        var environment = ProcessInfo.processInfo.environment
        environment["YONDER_TEST_TOKEN"] = token
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var line: [UInt8] = []
        while !line.contains(UInt8(ascii: "\n")) {
            let data = output.fileHandleForReading.availableData
            if data.isEmpty { break }
            line += data
        }
        struct Listening: Decodable { var event: String; var port: Int }
        guard let newline = line.firstIndex(of: UInt8(ascii: "\n")),
            let listening = try? JSONDecoder().decode(Listening.self, from: Data(line[..<newline])),
            listening.event == "listening"
        else {
            process.terminate()
            throw AgentStartError(output: String(decoding: line, as: UTF8.self))
        }
        return TestAgent(process: process, port: listening.port, token: token)
    }

    /// Opens a connection to this agent.
    func connect(_ configuration: Connection.Configuration = Connection.Configuration()) async throws -> Connection {
        try await Connection.connect(host: "127.0.0.1", port: port, token: token, configuration: configuration)
    }

    /// Sends `signal` to the agent.
    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Terminates the agent and waits for it to exit.
    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    struct AgentStartError: Error, CustomStringConvertible {
        var output: String
        var description: String { "yonder-test-agent did not report listening; it printed: \(output)" }
    }
}
