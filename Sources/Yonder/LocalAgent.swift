public import Foundation

/// An agent executable run as a child process on this machine, started the way a
/// bootstrapper starts one: a fresh token handed over in an environment variable (never in
/// argv), and the port read from the agent's `listening` line.
///
/// ```swift
/// let agent = try LocalAgent.start(executable: "/path/to/my-agent")
/// let connection = try await agent.connect()
/// ```
public final class LocalAgent: Sendable {
    /// The loopback port the agent listens on.
    public let port: Int
    /// The agent's process id.
    public let pid: Int32
    /// The build id from the agent's listening line.
    public let build: String?
    private let token: String
    private let process: Process

    private init(process: Process, port: Int, build: String?, token: String) {
        self.process = process
        self.pid = process.processIdentifier
        self.port = port
        self.build = build
        self.token = token
    }

    deinit { stop() }

    /// The path of an executable named `name` in the folder of the running program: where
    /// SwiftPM puts every product of a package.
    public static func besideThisProgram(_ name: String) -> String {
        URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// Starts `executable serve --port 0 …` and waits for its listening line.
    ///
    /// - Parameters:
    ///   - executable: the agent program (`yonder-agent` or a custom agent).
    ///   - arguments: more `serve` options, such as `["--build", "b1"]`.
    ///   - standardError: where the agent's own log goes; nil keeps this process's stderr.
    public static func start(executable: String, arguments: [String] = [], standardError: FileHandle? = nil) throws -> LocalAgent {
        var bytes = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255, using: &generator) }
        let token = bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()

        let variable = "YONDER_AGENT_TOKEN"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["serve", "--host", "127.0.0.1", "--port", "0", "--token-env", variable] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging([variable: token]) { $1 }
        let output = Pipe()
        process.standardOutput = output
        if let standardError { process.standardError = standardError }
        do {
            try process.run()
        } catch {
            throw YonderError(.connectionFailed, "cannot start the agent \(executable): \(error)")
        }
        var received: [UInt8] = []
        var printed: [UInt8] = []
        while true {
            if let newline = received.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(received[..<newline])
                received.removeSubrange(...newline)
                if let listening = AgentListening(line: line) {
                    return LocalAgent(process: process, port: listening.port, build: listening.build, token: token)
                }
                printed += line + [UInt8(ascii: "\n")]  // not ours, e.g. a banner: skipped
                continue
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            received += chunk
        }
        printed += received
        process.terminate()
        throw YonderError(
            .connectionFailed,
            "the agent \(executable) exited without reporting a listening port; it printed: \(String(decoding: printed, as: UTF8.self))")
    }

    /// Opens a connection to the agent with its token.
    public func connect(configuration: Connection.Configuration = Connection.Configuration()) async throws -> Connection {
        try await Connection.connect(host: "127.0.0.1", port: port, token: token, configuration: configuration)
    }

    /// Opens a connection to this agent over `stream`, such as an SSH tunnel to its port.
    public func connect(
        over stream: any ByteStream, endpoint: String, configuration: Connection.Configuration = Connection.Configuration()
    ) async throws -> Connection {
        try await Connection.open(over: stream, token: token, endpoint: endpoint, configuration: configuration)
    }

    /// Sends `signal` to the agent.
    public func signal(_ signal: Int32) { kill(pid, signal) }

    /// Kills the agent if it still runs and waits for it.
    public func stop() {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// The agent's `listening` line (PROTOCOL.md, "The agent process").
package struct AgentListening {
    package var port: Int
    package var build: String?
    package var pid: Int?

    /// Parses one line; nil unless it is a JSON object with `"event":"listening"` and a port.
    package init?(line: [UInt8]) {
        struct Line: Decodable {
            var event: String
            var port: Int
            var build: String?
            var pid: Int?
        }
        guard let decoded = try? JSONDecoder().decode(Line.self, from: Data(line)), decoded.event == "listening" else {
            return nil
        }
        port = decoded.port
        build = decoded.build
        pid = decoded.pid
    }

    /// Parses one line of text.
    package init?(line: some StringProtocol) {
        self.init(line: Array(line.utf8))
    }
}
