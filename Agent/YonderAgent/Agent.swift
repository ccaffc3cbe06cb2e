#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import CAgentSupport
import Dispatch
import Synchronization
public import YonderCore
import YonderProtocol

/// The entry point of an agent executable.
///
/// ```swift
/// @main enum MyAgent {
///     static func main() async throws {
///         await Agent.serve(functions: [Add.self], objects: [Counter.self])
///     }
/// }
/// ```
/// The executable then understands `serve --port 0 --token-env NAME …` (see PROTOCOL.md).
public enum Agent {
    /// The agent's software version.
    public static let version = AgentState.version

    /// Parses the process's arguments and serves the built-ins plus `functions` and `objects`
    /// until SIGTERM or SIGINT. Exits the process with a clear message on bad arguments.
    public static func serve(functions: [any RemoteFunction.Type], objects: [any RemoteObject.Type]) async {
        do {
            let registry = try Registry(functions: functions, objects: objects)
            pendingRegistry.withLock { $0 = registry }
        } catch {
            writeAll(2, Array("yonder-agent: \(error)\n".utf8))
            exit(2)
        }
        await AgentCommand.main()
    }
}

let pendingRegistry = Mutex<Registry?>(nil)

/// Set once SIGHUP came: the agent is closing to execute its file again.
let reexecuting = Atomic(false)

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yonder-agent",
        abstract: "The Yonder agent: runs remote functions and objects for Yonder clients.",
        subcommands: [Serve.self, WorkerCommand.self])
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Listen on a loopback port and serve Yonder requests.",
        discussion: """
            Prints one JSON line on stdout once it accepts connections, e.g.
              {"event":"listening","host":"127.0.0.1","port":40123,...}
            The token is never taken from the command line:
              YONDER_TOKEN=... yonder-agent serve --port 0 --token-env YONDER_TOKEN
            or the agent makes a fresh one at every start and writes it, with its port, to a
            file only its user can read (what clusters use):
              yonder-agent serve --port 0 --new-token-file /yonder/run/agent.json
            """)

    @Option(help: "Numeric address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "TCP port; 0 picks a free one.")
    var port = 0

    @Option(name: .customLong("token-file"), help: "Read the token from this file (whitespace trimmed).")
    var tokenFile: String?

    @Option(name: .customLong("token-env"), help: "Read the token from this environment variable, then unset it.")
    var tokenEnv: String?

    @Option(name: .customLong("new-token-file"), help: "Make a fresh token at every start and write it, the port, pid, build and instance as one JSON object to this file (mode 0600).")
    var newTokenFile: String?

    @Option(name: .customLong("handshake-timeout"), help: "Seconds a connection has to complete the handshake.")
    var handshakeTimeout = 5.0

    @Option(name: .customLong("max-unauthenticated"), help: "How many connections may be in the handshake at once.")
    var maxUnauthenticated = 64

    @Option(name: .customLong("max-in-flight"), help: "How many requests of one connection may run at once.")
    var maxInFlight = 1024

    @Option(name: .customLong("max-objects"), help: "How many remote objects may live at once (with --isolation process each has a process).")
    var maxObjects = 256

    @Option(help: ArgumentHelp(
        "Where user code runs: `process` (worker processes: the functions in one, each object in its own, so a trap fails only what ran there) or `none` (in the agent itself: a trap ends the agent).",
        valueName: "process|none"))
    var isolation = "process"

    @Option(help: "The build id reported to clients.")
    var build = "dev"

    @Option(name: .customLong("build-file"), help: "Read the build id from this file at every start (it wins over --build): a container whose agent is swapped in place keeps its arguments.")
    var buildFile: String?

    @Option(name: .customLong("log-file"), help: "Write the agent's own log here instead of stderr.")
    var logFile: String?

    @Option(name: .customLong("activity-file"), help: "Write when a request last ran here, as `UNIX_SECONDS RUNNING` (requests running now), at the start and every second while requests run; autostop's watcher reads it.")
    var activityFile: String?

    @Option(name: .customLong("swap-fd"), help: ArgumentHelp(
        "Given by the agent to the new build it executes in place (yonder.swap): a descriptor holding its token, instance and listening socket.",
        visibility: .hidden))
    var swapFD: Int32?

    @Option(name: .customLong("jobs-dir"), help: "Keep the jobs of `yonder.job.start` (their records and output) in this folder; without it the agent runs no jobs.")
    var jobsDir: String?

    func validate() throws {
        if [tokenFile, tokenEnv, newTokenFile].compactMap({ $0 }).count != 1 {
            throw ValidationError("give exactly one of --token-file PATH, --token-env NAME or --new-token-file PATH")
        }
        guard handshakeTimeout > 0, maxUnauthenticated > 0 else {
            throw ValidationError("--handshake-timeout and --max-unauthenticated must be positive")
        }
        guard ["process", "none"].contains(isolation) else {
            throw ValidationError("--isolation must be process or none, not \(isolation)")
        }
        guard (0...65535).contains(port) else {
            throw ValidationError("--port must be from 0 to 65535")
        }
    }

    func run() async throws {
        let handover = try swapFD.map { try Swap.Handover.receive(from: $0) }
        let token = try handover?.token ?? readToken()
        var build = self.build
        if let buildFile {
            guard let text = readWholeFile(buildFile)?.trimmingWhitespace, !text.isEmpty else {
                throw ValidationError("cannot read the build id from \(buildFile): \(errorText(errno))")
            }
            build = text
        }
        if let logFile {
            let fd = open(logFile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw ValidationError("cannot open the log file \(logFile): \(errorText(errno))")
            }
            AgentLogHandler.sink.withLock { $0 = fd }
        }
        AgentLogHandler.bootstrapOnce()
        signal(SIGPIPE, SIG_IGN)
        raiseDescriptorLimit()
        yonder_tune_memory()
        OwnChildren.reapOrphansIfFirstProcess()

        let registry = try (pendingRegistry.withLock { $0 } ?? Registry(functions: [], objects: []))
        let server: AgentServer
        do {
            var limits = AgentLimits()
            limits.handshakeTimeout = .milliseconds(Int64(handshakeTimeout * 1000))
            limits.maximumUnauthenticated = maxUnauthenticated
            limits.maximumInFlight = max(1, maxInFlight)
            limits.maximumObjects = max(1, maxObjects)
            server = try await AgentServer.start(
                registry: registry, token: token, host: host, port: port, build: build, limits: limits,
                isolated: isolation == "process", jobsFolder: jobsDir, handover: handover)
        } catch {
            throw ValidationError("\(error)")
        }
        // SIGTERM and SIGINT: goodbye to every client, then exit 0. The handler is installed
        // before the listening line, so that a signal sent as soon as that is read is not lost.
        let stopSignals = yonder_stop_signals_pipe()
        guard stopSignals >= 0 else {
            throw ValidationError("cannot set up the SIGTERM handler: \(errorText(errno))")
        }
        // SIGHUP: the same, then the agent executes its file again, with the same arguments
        // and the same pid: how a new build swapped into the container starts, without
        // restarting the container. Jobs are stopped first, as a restart would. `yonder.swap`
        // does the same, handing over its socket and token.
        let reexecute = Self.reexecution(server: server)
        if let buildFile, CommandLine.arguments[0].contains("/") {
            Swap.setup.withLock {
                $0 = Swap.Setup(executable: CommandLine.arguments[0], buildFile: buildFile, token: token, listener: server.listenerDescriptor,
                    stopAccepting: { await server.stopAccepting() }, reexecute: reexecute)
            }
        }
        Thread.detach {
            var byte: UInt8 = 0
            while read(stopSignals, &byte, 1) < 0 && errno == EINTR {}
            if byte == UInt8(SIGHUP) { return reexecute([]) }
            Task {
                await server.stop()
                Glibc.exit(0)
            }
        }
        var line: [String: JSONValue] = [:]
        line["event"] = .string("listening")
        line["host"] = .string(server.host)
        line["port"] = .integer(Int64(server.port))
        line["pid"] = .integer(Int64(getpid()))
        line["name"] = .string(AgentState.name)
        line["version"] = .string(AgentState.version)
        line["build"] = .string(build)
        line["protocol"] = .integer(Int64(Message.protocolVersion))
        line["instance"] = .string(server.instance)
        if let newTokenFile {
            var record = line
            record["token"] = .string(token)
            record["event"] = nil
            try writePrivately(newTokenFile, Message.jsonText(.object(record)) + Array("\n".utf8))
        }
        if let activityFile { server.activity.record(to: activityFile) }
        let text = String(decoding: Message.jsonText(.object(line)), as: UTF8.self)
        writeAll(1, Array((text + "\n").utf8))

        await server.waitUntilClosed()
        // Closed for SIGHUP: the process is about to become the new agent; returning would
        // end it first.
        while reexecuting.load(ordering: .sequentiallyConsistent) { sleep(60) }
    }

    /// Says goodbye, stops the jobs, then executes the agent's file again with its arguments
    /// (less a previous `--swap-fd`) and `extra`.
    private static func reexecution(server: AgentServer) -> @Sendable ([String]) -> Void {
        var arguments: [String] = []
        var skip = false
        for argument in CommandLine.arguments {
            if skip { skip = false; continue }
            if argument == "--swap-fd" { skip = true; continue }
            if argument.hasPrefix("--swap-fd=") { continue }
            arguments.append(argument)
        }
        return { [arguments] extra in
            guard !reexecuting.exchange(true, ordering: .sequentiallyConsistent) else { return }
            Task {
                await server.stop()
                await server.jobs.stopAll()
                let all = arguments + extra
                let argv = all.map { strdup($0) } + [nil]
                // The signal mask outlives execv, and this thread (one of the concurrency
                // pool's) blocks SIGHUP, SIGTERM and SIGINT: the new agent must not.
                var none = sigset_t()
                sigemptyset(&none)
                pthread_sigmask(SIG_SETMASK, &none, nil)
                execv(all[0], argv)
                writeAll(2, Array("yonder-agent: cannot execute \(all[0]) again: \(errorText(errno))\n".utf8))
                Glibc.exit(1)
            }
        }
    }

    private func readToken() throws -> String {
        if newTokenFile != nil { return HandshakeProof.newToken() }
        if let tokenEnv {
            guard let raw = getenv(tokenEnv) else {
                throw ValidationError("the environment variable \(tokenEnv) is not set; put the token in it")
            }
            let token = String(cString: raw)
            // Overwrite the value where it lies (the process's environment block, which
            // /proc/PID/environ shows), then drop the variable: no trace of the token is left.
            memset(raw, 0, strlen(raw))
            unsetenv(tokenEnv)
            guard !token.isEmpty else { throw ValidationError("the environment variable \(tokenEnv) is empty") }
            return token
        }
        let path = tokenFile ?? ""
        guard let text = readWholeFile(path) else {
            throw ValidationError("cannot read the token file \(path): \(errorText(errno))")
        }
        let token = text.trimmingWhitespace
        guard !token.isEmpty else { throw ValidationError("the token file \(path) is empty") }
        return token
    }
}

/// The text of the file at `path`, or nil (with errno set) when it cannot be opened or read.
func readWholeFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    return readToEnd(fd).map { String(decoding: $0, as: UTF8.self) }
}

/// Everything `fd` gives until its end, or nil (with errno set) when a read fails.
func readToEnd(_ fd: Int32) -> [UInt8]? {
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        if count < 0 { return nil }
        if count == 0 { return bytes }
        bytes += buffer[0..<count]
    }
}

/// Raises the soft limit on open descriptors to the hard one: each connection holds one.
func raiseDescriptorLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

/// Writes `bytes` to `path` readable by this user only, through a temporary file and a
/// rename, so a reader sees the old file or the new one.
func writePrivately(_ path: String, _ bytes: [UInt8]) throws {
    if let failure = replaceFile(path, bytes, mode: 0o600) { throw ValidationError(failure) }
}

/// Writes `bytes` to `path` with `mode` through a temporary file and a rename, so a reader sees
/// the old file or the new one; returns what failed, or nil.
func replaceFile(_ path: String, _ bytes: [UInt8], mode: mode_t) -> String? {
    let temporary = path + ".tmp"
    unlink(temporary)
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard fd >= 0 else { return "cannot write \(temporary): \(errorText(errno))" }
    writeAll(fd, bytes)
    fsync(fd)
    close(fd)
    guard rename(temporary, path) == 0 else {
        let reason = errorText(errno)
        unlink(temporary)
        return "cannot write \(path): \(reason)"
    }
    return nil
}

extension String {
    var trimmingWhitespace: String {
        let isSpace: (Character) -> Bool = { $0.isWhitespace }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}

/// The operating system's text for an errno value.
func errorText(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "error \(code)" }
    return String(validatingCString: text) ?? "error \(code)"
}
