public import Foundation

/// An agent executable running as a child process on a free loopback port, started the way a
/// bootstrapper starts one: token in an environment variable, port read from its JSON line.
public final class AgentProcess: @unchecked Sendable {
    // Safe: every stored property is a constant; Process is only read after start.
    /// The port from the agent's listening line.
    public let port: Int
    /// The token the agent accepts.
    public let token: String
    /// The listening line, parsed.
    public let listening: [String: Any]
    private let process: Process

    /// The agent's process id.
    public var pid: Int32 { process.processIdentifier }

    /// Starts `executable` (a path) with `serve --port 0 --token-env …` plus `arguments`.
    public init(executable: URL, arguments: [String] = []) throws {
        token = (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 16) }.joined()
        process = Process()
        process.executableURL = executable
        process.arguments = ["serve", "--port", "0", "--token-env", "YONDER_TEST_AGENT_TOKEN"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(["YONDER_TEST_AGENT_TOKEN": token]) { $1 }
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var buffer = Data()
        while !buffer.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
        }
        guard let line = buffer.split(separator: UInt8(ascii: "\n")).first,
            let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
            object["event"] as? String == "listening", let port = object["port"] as? Int
        else {
            process.terminate()
            throw RawFrameError("\(executable.lastPathComponent) did not print its listening line; it printed: \(String(decoding: buffer, as: UTF8.self))")
        }
        self.port = port
        self.listening = object
    }

    deinit { stop() }

    /// Sends `signal` to the agent.
    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the agent to exit and returns its status.
    public func waitForExit() -> Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Kills the agent if it still runs.
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// Whether the tests run under CI, where a missing tool is a failure rather than a skip.
public var runningUnderCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }
