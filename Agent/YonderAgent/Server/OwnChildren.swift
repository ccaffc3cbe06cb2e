#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The processes the agent started itself (workers, `exec` commands), each reaped by a thread
/// of its own; and, when the agent is a container's first process, the reaping of everyone
/// else's orphans.
///
/// As pid 1 the agent inherits every process whose parent died: a daemon that a command of
/// `yonder exec` left behind, the children of a crashed worker. Nobody else will wait for them,
/// so without a reaper their zombies would pile up for the life of the container. The reaper
/// waits only for zombies that are not the agent's own (those have their own waiting thread,
/// which must get their exit status), and a child is recorded in the same lock as it is
/// started, so the reaper cannot take it first.
enum OwnChildren {
    private static let pids = Mutex<Set<pid_t>>([])

    /// Starts a child with `spawn` (posix_spawn and the like: it sets the pid and returns 0,
    /// or an error number) and records it.
    static func start(_ spawn: (inout pid_t) -> Int32) -> (pid: pid_t, status: Int32) {
        pids.withLock { own in
            var pid: pid_t = 0
            let status = spawn(&pid)
            if status == 0 { own.insert(pid) }
            return (pid, status)
        }
    }

    /// The child `pid` was waited for by its own thread.
    static func reaped(_ pid: pid_t) {
        _ = pids.withLock { $0.remove(pid) }
    }

    /// When this process is pid 1, waits every second for the zombies it inherited.
    static func reapOrphansIfFirstProcess() {
        guard getpid() == 1 else { return }
        Thread.detach {
            while true {
                sleep(1)
                reapOrphans()
            }
        }
    }

    /// Waits for each zombie child that is not one of the agent's own. Returns how many.
    @discardableResult
    static func reapOrphans() -> Int {
        pids.withLock { own in
            var reaped = 0
            guard let folder = opendir("/proc") else { return 0 }
            defer { closedir(folder) }
            let me = getpid()
            while let entry = readdir(folder) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                guard let pid = pid_t(name), !own.contains(pid), let (state, parent) = status(of: pid),
                    state == "Z", parent == me
                else { continue }
                if waitpid(pid, nil, WNOHANG) == pid { reaped += 1 }
            }
            return reaped
        }
    }

    /// The state letter and parent pid of `pid`, from /proc/PID/stat.
    private static func status(of pid: pid_t) -> (Character, pid_t)? {
        guard let file = fopen("/proc/\(pid)/stat", "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 512)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // "PID (COMMAND) STATE PPID …"; the command may hold spaces and parentheses.
        guard let close = line.lastIndex(of: ")") else { return nil }
        let fields = line[line.index(after: close)...].split(separator: " ")
        guard fields.count > 1, let state = fields[0].first, let parent = pid_t(fields[1]) else { return nil }
        return (state, parent)
    }
}
