#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import Foundation
public import Yonder
import Synchronization

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
    private let exited = Mutex(false)

    private init(pid: pid_t, port: Int, build: String?, token: String) {
        self.pid = pid
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
        var pipe: [Int32] = [0, 0]
        guard Glibc.pipe(&pipe) == 0 else {
            throw YonderError(.connectionFailed, "cannot start the agent \(executable): pipe failed (errno \(errno))")
        }
        _ = fcntl(pipe[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipe[1], F_SETFD, FD_CLOEXEC)
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(
                executable, ["serve", "--host", "127.0.0.1", "--port", "0", "--token-env", variable] + arguments,
                environment: ProcessInfo.processInfo.environment.merging([variable: token]) { $1 },
                standardOutput: .descriptor(pipe[1]),
                standardError: standardError.map { .descriptor($0.fileDescriptor) } ?? .inherited)
        } catch {
            close(pipe[0])
            close(pipe[1])
            throw YonderError(.connectionFailed, "cannot start the agent \(executable): \(error)")
        }
        close(pipe[1])
        defer { close(pipe[0]) }
        var received: [UInt8] = []
        var printed: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            if let newline = received.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(received[..<newline])
                received.removeSubrange(...newline)
                if let listening = AgentListening(line: line) {
                    return LocalAgent(pid: pid, port: listening.port, build: listening.build, token: token)
                }
                printed += line + [UInt8(ascii: "\n")]  // not ours, e.g. a banner: skipped
                continue
            }
            let count = buffer.withUnsafeMutableBytes { read(pipe[0], $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            received += buffer[0..<count]
        }
        printed += received
        kill(pid, SIGKILL)
        ChildProcess.wait(pid)
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

    /// Asks the agent to stop (SIGTERM) if it still runs and waits until it has exited on its
    /// own, as when a bootstrapper stops it: it ends its requests and children first.
    public func terminate() { end(with: SIGTERM) }

    /// Kills the agent if it still runs and waits for it.
    public func stop() { end(with: SIGKILL) }

    /// Sends `signal` once, if the agent still runs, and waits until it has exited.
    private func end(with signal: Int32) {
        let pid = self.pid
        exited.withLock { exited in
            guard !exited else { return }
            exited = true
            kill(pid, signal)
            ChildProcess.wait(pid)
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
