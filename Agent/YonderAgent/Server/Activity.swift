#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// When the agent last served a user's request, for autostop: a watcher on the node reads it
/// from the activity file and stops the node once it has been idle long enough.
///
/// Every request counts (calls, execs, object calls, files) except the read-only look of
/// `yonder.info` and `yonder.ping`, so `yonder status` does not keep a cluster alive. The
/// request path only bumps two counters; a thread writes the file once a second while there
/// is something to say.
final class Activity: Sendable {
    /// Requests running now.
    private let inFlight = Atomic(0)
    /// Starts and ends of requests so far: a change means activity since the last look.
    private let changes = Atomic(0)

    func begin() {
        inFlight.add(1, ordering: .relaxed)
        changes.add(1, ordering: .relaxed)
    }

    func end() {
        inFlight.subtract(1, ordering: .relaxed)
        changes.add(1, ordering: .relaxed)
    }

    /// The requests running now.
    var running: Int { inFlight.load(ordering: .relaxed) }

    /// Writes `UNIX_SECONDS RUNNING` to `path` now, then once a second whenever a request ran
    /// or runs, until the process ends. The file is replaced by a rename: a reader sees a
    /// whole line.
    func record(to path: String) {
        Self.write(path, running: running)
        Thread.detach { [self] in
            var seen = changes.load(ordering: .relaxed)
            while true {
                sleep(1)
                let now = changes.load(ordering: .relaxed)
                let running = self.running
                guard now != seen || running > 0 else { continue }
                seen = now
                Self.write(path, running: running)
            }
        }
    }

    private static func write(_ path: String, running: Int) {
        let line = Array("\(time(nil)) \(running)\n".utf8)
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        writeAll(fd, line)
        close(fd)
        if rename(temporary, path) != 0 { unlink(temporary) }
    }
}
