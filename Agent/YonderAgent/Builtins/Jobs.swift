#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CAgentSupport
import Synchronization
import YonderProtocol

/// The agent's job table (`yonder.job.*`): commands that run on whether or not a client stays
/// connected, as `yonder launch --detach` needs.
///
/// Everything lives in the jobs folder (`serve --jobs-dir`), one folder per job:
/// `job.json` (id, command, start, pid), `output` (the command's standard output and error,
/// in the order written: both are that one file, so nothing is lost when no client reads)
/// and `end.json` once it ended. The table is read back from the folder, so a restarted
/// agent lists the jobs of the one before; one that was running then is `lost`.
final class JobTable: Sendable {
    /// How many ended jobs are kept; older ones are removed when a job starts.
    static let kept = 100

    let folder: String?
    private let activity: Activity
    /// The jobs this agent started that still run, by id.
    private let running = Mutex<[Int: RunningJob]>([:])

    init(folder: String?, activity: Activity) {
        self.folder = folder
        self.activity = activity
    }

    private struct Record: Codable {
        var id: Int
        var command: [String]
        var started: Double
        var pid: Int
    }

    private struct End: Codable {
        var ended: Double
        var status: ExecStatus
        var cancelled: Bool
    }

    private final class RunningJob: Sendable {
        let pid: pid_t
        let cancelled = Atomic(false)
        let done = Latch()
        init(pid: pid_t) { self.pid = pid }

        func waitForEnd() async { await done.wait() }

        func finish() { done.open() }
    }

    private func root() throws(ProtocolError) -> String {
        guard let folder else {
            throw ProtocolError(.unavailable, "this agent keeps no jobs: it was started without --jobs-dir")
        }
        return folder
    }

    // MARK: The built-ins

    /// `yonder.job.start`: starts the command with its output going to the job's file.
    func start(_ value: JSONValue) throws -> JSONValue {
        let arguments = try value.decode(as: BuiltinWire.JobStartArguments.self, path: ["arguments"])
        guard let program = arguments.command.first, !program.isEmpty else {
            throw ProtocolError(.invalidArguments, "command must hold at least the program to run, e.g. [\"sh\", \"-c\", \"make\"]", path: ["arguments", "command"])
        }
        if let id = arguments.id, id < 1 {
            throw ProtocolError(.invalidArguments, "a job id is a positive integer, not \(id)", path: ["arguments", "id"])
        }
        if let cwd = arguments.cwd {
            var info = stat()
            guard stat(cwd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
                throw ProtocolError(.execFailed, "cannot run \(program): the working folder \(cwd) does not exist or is not a folder", path: ["arguments", "cwd"])
            }
        }
        let root = try root()
        if mkdir(root, 0o700) != 0 && errno != EEXIST {
            throw ProtocolError(.execFailed, "cannot make the jobs folder \(root): \(errorText(errno))")
        }
        prune(root)
        // mkdir is the lock: of two starts that want one id, one gets it.
        let id: Int
        if let wanted = arguments.id {
            guard mkdir("\(root)/\(wanted)", 0o700) == 0 else {
                if errno == EEXIST {
                    throw ProtocolError(.invalidArguments, "job \(wanted) exists already on this agent", path: ["arguments", "id"])
                }
                throw ProtocolError(.execFailed, "cannot make the folder of job \(wanted): \(errorText(errno))")
            }
            id = wanted
        } else {
            var next = (ids(root).max() ?? 0) + 1
            while mkdir("\(root)/\(next)", 0o700) != 0 {
                guard errno == EEXIST else { throw ProtocolError(.execFailed, "cannot make the folder of job \(next): \(errorText(errno))") }
                next += 1
            }
            id = next
        }
        let folder = "\(root)/\(id)"
        let output = open("\(folder)/output", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard output >= 0 else {
            let reason = errorText(errno)
            removeTree(folder)
            throw ProtocolError(.execFailed, "cannot make the output file of job \(id): \(reason)")
        }
        defer { close(output) }

        var environment = ProcessInfo.processInfo.environment
        for (key, value) in arguments.env ?? [:] { environment[key] = value }
        environment["YONDER_JOB_ID"] = String(id)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output, 1)
        posix_spawn_file_actions_adddup2(&actions, output, 2)
        if let cwd = arguments.cwd { yonder_spawn_add_chdir(&actions, cwd) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        SpawnDefaults.apply(to: &attributes)
        let argv = arguments.command.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        // Recorded as running before it can end, in the same lock as the reaper looks.
        let (job, rc): (RunningJob?, Int32) = running.withLock { table in
            let (pid, rc) = withExtendedLifetime((argv, envp)) {
                OwnChildren.start { pid in posix_spawnp(&pid, program, &actions, &attributes, argv, envp) }
            }
            guard rc == 0 else { return (nil, rc) }
            let job = RunningJob(pid: pid)
            table[id] = job
            return (job, rc)
        }
        guard let job else {
            removeTree(folder)
            throw ProtocolError(.execFailed, "cannot run \(program): \(errorText(rc))")
        }
        let record = Record(id: id, command: arguments.command, started: Self.now, pid: Int(job.pid))
        write(try JSONValue(encoding: record), to: "\(folder)/job.json")
        activity.begin()
        Thread.detach { [self] in
            var raw: Int32 = 0
            while waitpid(job.pid, &raw, 0) < 0 && errno == EINTR {}
            OwnChildren.reaped(job.pid)
            let status = raw & 0x7f == 0
                ? ExecStatus(exitCode: Int((raw >> 8) & 0xff), signal: nil)
                : ExecStatus(exitCode: nil, signal: Int(raw & 0x7f))
            let end = End(ended: Self.now, status: status, cancelled: job.cancelled.load(ordering: .relaxed))
            if let value = try? JSONValue(encoding: end) { write(value, to: "\(folder)/end.json") }
            _ = running.withLock { $0.removeValue(forKey: id) }
            activity.end()
            job.finish()
        }
        return try JSONValue(encoding: info(id, in: root))
    }

    /// `yonder.job.list`: every job in the folder, oldest first.
    func list() throws -> JSONValue {
        guard let folder else { return .array([]) }
        return try JSONValue(encoding: ids(folder).sorted().compactMap { info($0, in: folder) })
    }

    /// `yonder.job.cancel`: SIGTERM to the job's process group, SIGKILL 2 seconds later if
    /// it still runs; answers once it has ended. A job that ended already is left as it is.
    func cancel(_ value: JSONValue) async throws -> JSONValue {
        let arguments = try value.decode(as: BuiltinWire.JobArguments.self, path: ["arguments"])
        let root = try root()
        guard info(arguments.id, in: root) != nil else { throw unknown(arguments.id, in: root) }
        if let job = running.withLock({ $0[arguments.id] }) {
            await Self.stop([job])
        }
        guard let info = info(arguments.id, in: root) else { throw unknown(arguments.id, in: root) }
        return try JSONValue(encoding: info)
    }

    /// Stops every running job (SIGTERM, SIGKILL 2 seconds later) and returns once each has
    /// ended and its end is recorded: before the agent executes itself again.
    func stopAll() async {
        await Self.stop(running.withLock { Array($0.values) })
    }

    /// Marks the jobs cancelled, sends SIGTERM to each one's process group and SIGKILL 2
    /// seconds later to those still running; returns once every one has ended.
    private static func stop(_ jobs: [RunningJob]) async {
        for job in jobs {
            job.cancelled.store(true, ordering: .relaxed)
            kill(-job.pid, SIGTERM)
        }
        let killer = Task {
            try await Task.sleep(for: .seconds(2))
            for job in jobs { kill(-job.pid, SIGKILL) }
        }
        for job in jobs { await job.waitForEnd() }
        killer.cancel()
    }

    /// `yonder.job.logs`: the job's output from `offset`, as `output` messages on standard
    /// output; with `follow`, until the job has ended and all of it was sent. Cancelling the
    /// request stops the reading, never the job.
    func logs(_ value: JSONValue) async throws -> JSONValue {
        let arguments = try value.decode(as: BuiltinWire.JobArguments.self, path: ["arguments"])
        let root = try root()
        guard info(arguments.id, in: root) != nil else { throw unknown(arguments.id, in: root) }
        let id = arguments.id, follow = arguments.follow ?? false
        let path = "\(root)/\(id)/output"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ProtocolError(.execFailed, "cannot read the output of job \(id): \(errorText(errno))") }
        let context = RequestContext.current
        let stop = Atomic(false)
        let offset: Int = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                Thread.detach { [self] in
                    defer { close(fd) }
                    var offset = max(0, arguments.offset ?? 0)
                    var buffer = [UInt8](repeating: 0, count: Exec.outputPieceSize)
                    while !stop.load(ordering: .relaxed) {
                        let endedBefore = !isRunning(id, in: root)
                        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(offset)) }
                        if count > 0 {
                            offset += count
                            context?.emit(.output(Message.Output(id: context?.id ?? 0, stream: .stdout, data: Array(buffer[0..<count]))))
                            context?.holdBack()
                            continue
                        }
                        if count < 0 && errno == EINTR { continue }
                        // At the end of the file: done unless the job may still write more.
                        if !follow || endedBefore || count < 0 { break }
                        usleep(50_000)
                    }
                    continuation.resume(returning: offset)
                }
            }
        } onCancel: {
            stop.store(true, ordering: .relaxed)
        }
        try Task.checkCancellation()
        guard let info = info(id, in: root) else { throw unknown(id, in: root) }
        return try JSONValue(encoding: BuiltinWire.JobLogsResult(job: info, offset: offset))
    }

    // MARK: The folder

    private func unknown(_ id: Int, in root: String) -> ProtocolError {
        let known = ids(root).sorted()
        let list = known.isEmpty ? "it has none" : "it has \(known.suffix(10).map(String.init).joined(separator: ", "))"
        return ProtocolError(.invalidArguments, "this agent has no job \(id); \(list)", path: ["arguments", "id"])
    }

    private func isRunning(_ id: Int, in root: String) -> Bool {
        info(id, in: root)?.state == .running
    }

    /// The job `id` as the folder and the table tell it, or nil if it is not there.
    private func info(_ id: Int, in root: String) -> JobInfo? {
        let folder = "\(root)/\(id)"
        guard let record = read(Record.self, from: "\(folder)/job.json") else {
            // Between the folder's making and the record's writing the job is starting.
            guard running.withLock({ $0[id] != nil }) else { return nil }
            return JobInfo(id: id, command: [], state: .running, started: Self.now, ended: nil, status: nil, outputSize: 0)
        }
        var size = stat()
        let outputSize = stat("\(folder)/output", &size) == 0 ? Int(size.st_size) : 0
        if let end = read(End.self, from: "\(folder)/end.json") {
            let state: JobInfo.State = end.cancelled ? .cancelled : end.status.succeeded ? .succeeded : .failed
            return JobInfo(id: id, command: record.command, state: state, started: record.started, ended: end.ended, status: end.status, outputSize: outputSize)
        }
        let mine = running.withLock { $0[id] != nil }
        return JobInfo(id: id, command: record.command, state: mine ? .running : .lost, started: record.started, ended: nil, status: nil, outputSize: outputSize)
    }

    private func ids(_ root: String) -> [Int] {
        guard let folder = opendir(root) else { return [] }
        defer { closedir(folder) }
        var ids: [Int] = []
        while let entry = readdir(folder) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let id = Int(name), id > 0 { ids.append(id) }
        }
        return ids
    }

    /// Removes the oldest ended jobs beyond the newest `kept`.
    private func prune(_ root: String) {
        let ended = ids(root).sorted().filter { id in running.withLock { $0[id] == nil } }
        for id in ended.dropLast(Self.kept) { removeTree("\(root)/\(id)") }
    }

    private func removeTree(_ folder: String) {
        for name in ["job.json", "output", "end.json", "end.json.tmp", "job.json.tmp"] { unlink("\(folder)/\(name)") }
        rmdir(folder)
    }

    private func read<T: Decodable>(_ type: T.Type, from path: String) -> T? {
        guard let text = readWholeFile(path) else { return nil }
        return try? JSONValue.decode(T.self, fromJSON: Array(text.utf8))
    }

    /// Writes a record through a temporary file and a rename: a reader sees all of it or none.
    private func write(_ value: JSONValue, to path: String) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        writeAll(fd, JSONBytes.bytes(value))
        close(fd)
        if rename(temporary, path) != 0 { unlink(temporary) }
    }

    private static var now: Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}
