public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What went wrong starting or running a local helper process or server.
public struct LocalServerError: Error, CustomStringConvertible {
    /// What happened and what to do.
    public let description: String
    /// Makes an error with a message.
    public init(_ description: String) { self.description = description }
}

/// The one way the client side starts programs: posix_spawn, which works from any thread.
///
/// Not Foundation's `Process`: it hung waiting for a child from inside Swift concurrency on
/// Linux in our tests. Not swift-subprocess: its `run` ties a child's life to a scope, and the
/// children here outlive it (a cluster's private sshd runs until a later `yonder down`, in
/// another process, stops it by its recorded pid; a `LocalAgent` until `stop()`). The agent has
/// its own posix_spawn (Exec.swift, Worker.swift, with the same signal defaults): it must stay
/// small and static, and hands its workers a descriptor of their own.
public enum ChildProcess {
    /// Starts `path` with stdin from /dev/null and stdout and stderr to `output` (or
    /// /dev/null), no signal blocked and default handlers; returns its pid.
    public static func spawn(_ path: String, _ arguments: [String], environment: [String: String]? = nil, output: String? = nil) throws -> pid_t {
        try spawn(path, arguments, environment: environment, standardOutput: .file(output ?? "/dev/null"), standardError: .sameAsOutput)
    }

    /// Where a child's standard output or error goes.
    public enum Destination: Sendable {
        /// A file, created or truncated, readable by this user only.
        case file(String)
        /// An open descriptor of this process (the write end of a pipe).
        case descriptor(Int32)
        /// This process's own.
        case inherited
        /// For standard error: wherever standard output goes.
        case sameAsOutput
    }

    /// Starts `path` with stdin from /dev/null and its output where `standardOutput` and
    /// `standardError` say, no signal blocked and default handlers; returns its pid.
    public static func spawn(
        _ path: String, _ arguments: [String], environment: [String: String]? = nil,
        standardOutput: Destination, standardError: Destination
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        for (fd, destination) in [(Int32(1), standardOutput), (Int32(2), standardError)] {
            switch destination {
            case .file(let file): posix_spawn_file_actions_addopen(&actions, fd, file, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            case .descriptor(let source): posix_spawn_file_actions_adddup2(&actions, source, fd)
            case .inherited: break
            case .sameAsOutput: posix_spawn_file_actions_adddup2(&actions, 1, fd)
            }
        }
        // A child inherits the spawning thread's signal mask, and the threads of a Swift
        // program block signals: start it with none blocked and default handlers.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for entry in env { free(entry) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, env)
        guard rc == 0 else { throw LocalServerError("cannot start \(path): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// Runs a tool to its end and returns what it printed; throws on a non-zero status.
    @discardableResult
    public static func run(_ path: String, _ arguments: [String], environment: [String: String]? = nil) throws -> String {
        let (exitCode, text) = try runCapturing(path, arguments, environment: environment)
        guard exitCode == 0 else {
            throw LocalServerError("\(path) \(arguments.joined(separator: " ")) failed (exit status \(exitCode)): \(text)")
        }
        return text
    }

    /// Runs a program to its end; returns its exit code (128 + the signal's number when a
    /// signal killed it) and what it printed (stdout and stderr together).
    public static func runCapturing(_ path: String, _ arguments: [String], environment: [String: String]? = nil) throws -> (exitCode: Int32, output: String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-tool-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: output) }
        let pid = try spawn(path, arguments, environment: environment, output: output.path)
        let status = wait(pid)
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        let signal = status & 0x7f
        return (signal != 0 ? 128 + signal : (status >> 8) & 0xff, text)
    }

    /// Waits for `pid` to end and returns its raw wait status.
    @discardableResult
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }

    /// Every process below `pid`, read from /proc.
    public static func descendants(of pid: pid_t) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var parent: [pid_t: pid_t] = [:]
        for entry in entries {
            guard let child = pid_t(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 2, let ppid = pid_t(fields[1]) { parent[child] = ppid }
        }
        var result: [pid_t] = []
        var frontier = [pid]
        while let next = frontier.popLast() {
            for (child, ppid) in parent where ppid == next {
                result.append(child)
                frontier.append(child)
            }
        }
        return result
    }
}
