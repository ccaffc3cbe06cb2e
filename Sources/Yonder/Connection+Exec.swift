#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import YonderProtocol

extension Connection {
    /// Runs `command` inside the agent's container (the `yonder.exec` built-in) and streams
    /// its output.
    ///
    /// ```swift
    /// for try await event in connection.exec(["uname", "-a"]) {
    ///     if case .standardOutput(let bytes) = event { print(String(decoding: bytes, as: UTF8.self)) }
    /// }
    /// let result = try await connection.exec(["ls", "/"]).collect()
    /// ```
    /// A non-zero exit is a normal `.exit` event, not an error. The stream throws
    /// `YonderError` with `.execFailed` when the command cannot start (not found, bad
    /// working directory), `.cancelled` or `.timedOut`.
    /// - Parameters:
    ///   - command: the argument vector; `command[0]` is looked up in the agent's `PATH`.
    ///   - environment: variables added to the agent's environment.
    ///   - workingDirectory: where the command runs; nil for the agent's own.
    ///   - standardInput: written to the command's standard input, which is then closed.
    ///   - timeout: the agent kills the command after this long.
    public func exec(
        _ command: [String], environment: [String: String] = [:], workingDirectory: String? = nil,
        standardInput: [UInt8] = [], timeout: Duration? = nil
    ) -> ExecStream {
        let arguments = BuiltinWire.ExecArguments(
            command: command, env: environment.isEmpty ? nil : environment, cwd: workingDirectory,
            stdin: standardInput.isEmpty ? nil : Data(standardInput).base64EncodedString())
        let (events, continuation) = AsyncThrowingStream<ExecEvent, any Error>.makeStream()
        let operation = "exec \(command.first ?? "")"
        let task = Task {
            do {
                let value = try await call(
                    "yonder.exec", arguments: Payload(try JSONValue(encoding: arguments)), timeout: timeout, onLog: nil, operation: operation,
                    onOutput: { output in
                        continuation.yield(output.stream == .stdout ? .standardOutput(output.data) : .standardError(output.data))
                    })
                let status = try value.decode(as: ExecStatus.self, path: ["result"])
                continuation.yield(.exit(status))
                continuation.finish()
            } catch {
                continuation.finish(throwing: YonderError.wrapping(error, operation: operation))
            }
        }
        continuation.onTermination = { termination in
            if case .cancelled = termination { task.cancel() }
        }
        return ExecStream(events: events)
    }
}
