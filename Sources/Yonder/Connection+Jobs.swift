#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import YonderProtocol

/// Jobs: commands that run on in the agent's container whether or not a client stays
/// connected (the `yonder.job.*` built-ins, PROTOCOL.md section 9).
extension Connection {
    /// Starts `command` as a job and returns it (its id, `running`). Its standard output and
    /// error go, in the order written, to a file the agent keeps; read them with
    /// ``jobOutput(_:from:follow:)``.
    ///
    /// ```swift
    /// let job = try await connection.startJob(["/bin/sh", "-c", "python train.py"])
    /// for try await event in connection.jobOutput(job.id, follow: true) { … }
    /// ```
    /// - Parameters:
    ///   - command: the argument vector; `command[0]` is looked up in the agent's `PATH`.
    ///   - environment: variables added to the agent's environment.
    ///   - workingDirectory: where the command runs; nil for the agent's own.
    ///   - id: the id to take (a cluster gives one job the same id on every node); nil for
    ///     the next free one. An id in use is `.invalidArguments`.
    /// - Throws: `YonderError` with `.execFailed` when the command cannot start, or
    ///   `.unavailable` when the agent keeps no jobs (started without `--jobs-dir`).
    public func startJob(
        _ command: [String], environment: [String: String] = [:], workingDirectory: String? = nil, id: Int? = nil
    ) async throws -> JobInfo {
        let arguments = BuiltinWire.JobStartArguments(
            command: command, env: environment.isEmpty ? nil : environment, cwd: workingDirectory, id: id)
        return try await builtIn("yonder.job.start", JobInfo.self, input: arguments)
    }

    /// Every job the agent knows, oldest first.
    public func jobs() async throws -> [JobInfo] {
        try await builtIn("yonder.job.list", [JobInfo].self)
    }

    /// Stops job `id` (SIGTERM to its process group, SIGKILL 2 seconds later) and returns it
    /// once it has ended: `cancelled`, or as it was if it had ended already.
    public func cancelJob(_ id: Int) async throws -> JobInfo {
        try await builtIn("yonder.job.cancel", JobInfo.self, input: BuiltinWire.JobArguments(id: id))
    }

    /// The output of job `id` from byte `offset`, as `.standardOutput` events (standard error
    /// is in the same file, in order), then `.exit` with the job's status if it has ended.
    /// With `follow`, the stream goes on until the job ends; ending the iteration early
    /// stops the reading, never the job.
    public func jobOutput(_ id: Int, from offset: Int = 0, follow: Bool = false) -> JobOutputStream {
        let (events, continuation) = AsyncThrowingStream<JobOutputEvent, any Error>.makeStream()
        let operation = "logs of job \(id)"
        let arguments = BuiltinWire.JobArguments(id: id, offset: offset, follow: follow)
        let task = Task {
            do {
                let value = try await call(
                    "yonder.job.logs", arguments: Payload(try JSONValue(encoding: arguments)), timeout: nil, onLog: nil,
                    operation: operation,
                    onOutput: { output in continuation.yield(.output(output.data)) })
                let result = try value.decode(as: BuiltinWire.JobLogsResult.self, path: ["result"])
                continuation.yield(.end(result.job, offset: result.offset))
                continuation.finish()
            } catch {
                continuation.finish(throwing: YonderError.wrapping(error, operation: operation))
            }
        }
        continuation.onTermination = { termination in
            if case .cancelled = termination { task.cancel() }
        }
        return JobOutputStream(events: events)
    }
}

/// One event of ``Connection/jobOutput(_:from:follow:)``.
public enum JobOutputEvent: Sendable, Hashable {
    /// Bytes of the job's output (standard output and error as written).
    case output([UInt8])
    /// The reading is done: the job as it stands now (ended, when following), and the offset
    /// after the last byte sent, where a later read can go on.
    case end(JobInfo, offset: Int)
}

/// The output of a job, as it is read.
public struct JobOutputStream: AsyncSequence, Sendable {
    /// The events.
    public typealias Element = JobOutputEvent

    let events: AsyncThrowingStream<JobOutputEvent, any Error>

    /// Iterates the events.
    public func makeAsyncIterator() -> AsyncThrowingStream<JobOutputEvent, any Error>.AsyncIterator {
        events.makeAsyncIterator()
    }
}
