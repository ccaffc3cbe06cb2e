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
        package var mode: Int?
        package var createDirectories: Bool?

        package init(path: String, data: Data, append: Bool? = nil, mode: Int? = nil, createDirectories: Bool? = nil) {
            self.path = path
            self.data = data
            self.append = append
            self.mode = mode
            self.createDirectories = createDirectories
        }
    }

    /// `yonder.putFile`'s result: the file's size after the write.
    package struct PutFileResult: Codable, Sendable {
        package var size: Int
        package init(size: Int) { self.size = size }
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
