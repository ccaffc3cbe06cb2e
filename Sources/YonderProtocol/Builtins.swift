#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif

/// The arguments and results of the built-in functions (PROTOCOL.md section 9): one
/// definition, which the agent encodes and the client decodes.

/// What the `yonder.info` built-in reports about a running agent (`Connection.info()`).
public struct AgentInfo: Sendable, Hashable, Codable {
    /// The agent software's name, e.g. `yonder-agent`.
    public var name: String
    /// Its version.
    public var version: String
    /// An identifier of the exact build.
    public var build: String?
    /// The protocol version it speaks.
    public var protocolVersion: Int
    /// The agent's process id.
    public var pid: Int
    /// The host (or container) name it runs on.
    public var hostname: String?
    /// Its operating system.
    public var os: String?
    /// Seconds since it started.
    public var uptime: Double
    /// Every registered function, built-ins included, sorted.
    public var functions: [String]
    /// Every registered remote object type, sorted.
    public var objectTypes: [String]
    /// Every live object.
    public var objects: [ObjectReference]

    enum CodingKeys: String, CodingKey {
        case name, version, build, protocolVersion = "protocol", pid, hostname, os, uptime, functions, objectTypes, objects
    }

    package init(
        name: String, version: String, build: String?, protocolVersion: Int, pid: Int, hostname: String?, os: String?,
        uptime: Double, functions: [String], objectTypes: [String], objects: [ObjectReference]
    ) {
        self.name = name
        self.version = version
        self.build = build
        self.protocolVersion = protocolVersion
        self.pid = pid
        self.hostname = hostname
        self.os = os
        self.uptime = uptime
        self.functions = functions
        self.objectTypes = objectTypes
        self.objects = objects
    }
}

/// How a command run by `yonder.exec` ended.
public struct ExecStatus: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The exit code, if the command exited.
    public var exitCode: Int?
    /// The signal that killed it, if one did.
    public var signal: Int?

    /// Makes a status.
    public init(exitCode: Int?, signal: Int?) {
        self.exitCode = exitCode
        self.signal = signal
    }

    /// True when the command exited with code 0.
    public var succeeded: Bool { exitCode == 0 }

    /// The status a shell would report: the exit code, or 128 + the signal's number.
    public var shellStatus: Int32 { Int32(exitCode ?? 128 + (signal ?? 0)) }

    /// `exit code N` or `killed by signal N`.
    public var description: String {
        if let exitCode { return "exit code \(exitCode)" }
        if let signal { return "killed by signal \(signal)" }
        return "unknown exit status"
    }

    private enum CodingKeys: String, CodingKey { case exitCode, signal }

    /// Both members are always written; the one that does not apply is null.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(exitCode, forKey: .exitCode)
        try container.encode(signal, forKey: .signal)
    }
}

/// The wire types of the other built-ins' arguments and results.
package enum BuiltinWire {
    /// `yonder.exec`'s arguments.
    package struct ExecArguments: Codable, Sendable {
        package var command: [String]
        package var env: [String: String]?
        package var cwd: String?
        /// Standard input, base64.
        package var stdin: String?

        package init(command: [String], env: [String: String]? = nil, cwd: String? = nil, stdin: String? = nil) {
            self.command = command
            self.env = env
            self.cwd = cwd
            self.stdin = stdin
        }
    }

    /// `yonder.putFile`'s arguments.
    package struct PutFileArguments: Codable, Sendable {
        package var path: String
        /// The bytes: base64 on the wire, or an attachment (PROTOCOL.md section 3).
        package var data: Data
        package var append: Bool?
        /// Where in the file to write, leaving the rest of it as it is; excludes `append`.
        package var offset: Int?
        package var mode: Int?
        package var createDirectories: Bool?

        package init(path: String, data: Data, append: Bool? = nil, offset: Int? = nil, mode: Int? = nil, createDirectories: Bool? = nil) {
            self.path = path
            self.data = data
            self.append = append
            self.offset = offset
            self.mode = mode
            self.createDirectories = createDirectories
        }
    }

    /// `yonder.putFile`'s result: the file's size after the write, and where the write began
    /// (absent from agents older than `offset`, which is how a client knows to send its
    /// pieces one after another).
    package struct PutFileResult: Codable, Sendable {
        package var size: Int
        package var offset: Int?
        package init(size: Int, offset: Int? = nil) {
            self.size = size
            self.offset = offset
        }
    }

    /// `yonder.getFile`'s arguments.
    package struct GetFileArguments: Codable, Sendable {
        package var path: String
        package var offset: Int?
        package var length: Int?

        package init(path: String, offset: Int? = nil, length: Int? = nil) {
            self.path = path
            self.offset = offset
            self.length = length
        }
    }

    /// `yonder.getFile`'s result: a piece of the file (base64, or an attachment), the file's
    /// size and whether the piece reaches its end.
    package struct GetFileResult: Codable, Sendable {
        package var data: Data
        package var size: Int
        package var eof: Bool

        package init(data: Data, size: Int, eof: Bool) {
            self.data = data
            self.size = size
            self.eof = eof
        }
    }
}

/// A job of the agent's job table (PROTOCOL.md section 9, `yonder.job.start`): a command
/// that runs on whether or not a client stays connected, its output kept in a file.
public struct JobInfo: Sendable, Hashable, Codable {
    /// How a job stands.
    public enum State: String, Sendable, Hashable, Codable {
        /// It runs.
        case running
        /// It exited with code 0.
        case succeeded
        /// It exited with another code, or a signal killed it.
        case failed
        /// `yonder.job.cancel` stopped it.
        case cancelled
        /// It was running when the agent that started it went away, and nothing knows how it ended.
        case lost
    }

    /// The job's number: unique within the agent's jobs folder.
    public var id: Int
    /// What it runs (the argument vector).
    public var command: [String]
    /// How it stands.
    public var state: State
    /// When it started, in seconds since 1970.
    public var started: Double
    /// When it ended, if it did.
    public var ended: Double?
    /// How it ended, if it did and that is known.
    public var status: ExecStatus?
    /// Bytes of output (standard output and standard error, in the order written) so far.
    public var outputSize: Int

    /// Makes a job record.
    public init(id: Int, command: [String], state: State, started: Double, ended: Double?, status: ExecStatus?, outputSize: Int) {
        self.id = id
        self.command = command
        self.state = state
        self.started = started
        self.ended = ended
        self.status = status
        self.outputSize = outputSize
    }

    /// Whether it still runs.
    public var isRunning: Bool { state == .running }
}

extension BuiltinWire {
    /// `yonder.job.start`'s arguments: `yonder.exec`'s, less standard input (a job reads
    /// /dev/null), plus the id to take (all nodes of a cluster share one), if any.
    package struct JobStartArguments: Codable, Sendable {
        package var command: [String]
        package var env: [String: String]?
        package var cwd: String?
        package var id: Int?

        package init(command: [String], env: [String: String]? = nil, cwd: String? = nil, id: Int? = nil) {
            self.command = command
            self.env = env
            self.cwd = cwd
            self.id = id
        }
    }

    /// The arguments of `yonder.job.cancel` and `yonder.job.logs`.
    package struct JobArguments: Codable, Sendable {
        package var id: Int
        /// `yonder.job.logs`: the first byte of output to send.
        package var offset: Int?
        /// `yonder.job.logs`: keep sending output until the job ends.
        package var follow: Bool?

        package init(id: Int, offset: Int? = nil, follow: Bool? = nil) {
            self.id = id
            self.offset = offset
            self.follow = follow
        }
    }

    /// `yonder.listFiles`'s arguments.
    package struct ListFilesArguments: Codable, Sendable {
        package var path: String
        package init(path: String) { self.path = path }
    }

    /// One regular file that `yonder.listFiles` found.
    package struct ListedFile: Codable, Sendable, Hashable {
        /// Relative to the listed folder; empty when the path listed is the file itself.
        package var path: String
        package var size: Int
        /// Lowercase hex.
        package var sha256: String
        package var executable: Bool

        package init(path: String, size: Int, sha256: String, executable: Bool) {
            self.path = path
            self.size = size
            self.sha256 = sha256
            self.executable = executable
        }
    }

    /// `yonder.listFiles`'s result.
    package struct ListFilesResult: Codable, Sendable {
        /// False when nothing is at the path.
        package var exists: Bool
        package var files: [ListedFile]

        package init(exists: Bool, files: [ListedFile]) {
            self.exists = exists
            self.files = files
        }
    }

    /// `yonder.swap`'s arguments: a new agent file already put on the agent's machine.
    package struct SwapArguments: Codable, Sendable {
        /// Where the new executable is (put there with `yonder.putFile`).
        package var path: String
        /// The build id the new agent reports.
        package var build: String
        /// The SHA-256 of the file, lowercase hex: a partial upload is refused.
        package var sha256: String

        package init(path: String, build: String, sha256: String) {
            self.path = path
            self.build = build
            self.sha256 = sha256
        }
    }

    /// `yonder.swap`'s result: the instance the new agent will have.
    package struct SwapResult: Codable, Sendable {
        package var instance: String
        package var build: String

        package init(instance: String, build: String) {
            self.instance = instance
            self.build = build
        }
    }

    /// `yonder.job.logs`'s result: the job, and the offset after the last byte sent.
    package struct JobLogsResult: Codable, Sendable {
        package var job: JobInfo
        package var offset: Int

        package init(job: JobInfo, offset: Int) {
            self.job = job
            self.offset = offset
        }
    }
}
