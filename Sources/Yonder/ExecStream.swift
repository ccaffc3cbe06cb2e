/// One event of a command run by `Connection.exec`: output as it is written, then how the
/// command ended.
public enum ExecEvent: Sendable, Hashable {
    /// Bytes the command wrote to its standard output.
    case standardOutput([UInt8])
    /// Bytes the command wrote to its standard error.
    case standardError([UInt8])
    /// The command ended; always the last event.
    case exit(ExecStatus)
}

/// Everything a command wrote, and how it ended.
public struct ExecResult: Sendable, Hashable {
    /// All of its standard output.
    public var standardOutput: [UInt8]
    /// All of its standard error.
    public var standardError: [UInt8]
    /// How it ended.
    public var status: ExecStatus

    /// Standard output as text (invalid UTF-8 repaired).
    public var outputText: String { String(decoding: standardOutput, as: UTF8.self) }
    /// Standard error as text (invalid UTF-8 repaired).
    public var errorText: String { String(decoding: standardError, as: UTF8.self) }
}

/// The live events of a remote command: iterate it to see output while the command runs.
/// Ending the iteration early cancels the command.
public struct ExecStream: AsyncSequence, Sendable {
    /// The events.
    public typealias Element = ExecEvent

    let events: AsyncThrowingStream<ExecEvent, any Error>

    /// Iterates the events.
    public func makeAsyncIterator() -> AsyncThrowingStream<ExecEvent, any Error>.AsyncIterator {
        events.makeAsyncIterator()
    }

    /// Waits for the command to end and returns all its output and its status.
    public func collect() async throws -> ExecResult {
        var result = ExecResult(standardOutput: [], standardError: [], status: ExecStatus(exitCode: nil, signal: nil))
        for try await event in events {
            switch event {
            case .standardOutput(let bytes): result.standardOutput += bytes
            case .standardError(let bytes): result.standardError += bytes
            case .exit(let status): result.status = status
            }
        }
        return result
    }
}
