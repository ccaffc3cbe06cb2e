import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One `up` or `down` of a cluster at a time, across processes: an flock(2) on
/// `~/.yonder/locks/NAME.lock`, held for the whole operation, with its holder's pid, start
/// time and operation written in the file for the error another process shows. The system
/// drops the lock when its holder ends, however it ends; the file itself stays.
final class ClusterLock: Sendable {
    private let descriptor: Int32

    private init(descriptor: Int32) { self.descriptor = descriptor }

    /// The lock file of cluster `name`.
    static func file(for name: String) -> URL {
        ClusterState.home.appendingPathComponent("locks").appendingPathComponent("\(name).lock")
    }

    /// Takes the lock of cluster `name` for `operation` ("brought up", "taken down"), or
    /// throws `busy` at once, naming the process that holds it.
    static func acquire(_ name: String, for operation: String) throws -> ClusterLock {
        try ClusterSpec.checkName(name)
        let url = file(for: name)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw ClusterError(.stateFailed, "cannot make \(url.deletingLastPathComponent().path): \(error)")
        }
        // Close-on-exec: a child (a private sshd that outlives this process) must not hold it.
        let fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw ClusterError(.stateFailed, "cannot open the lock file \(url.path): \(String(cString: strerror(errno)))")
        }
        var taken: Int32
        repeat { taken = flock(fd, LOCK_EX | LOCK_NB) } while taken != 0 && errno == EINTR
        guard taken == 0 else {
            let reason = errno
            let holder = String(decoding: FileManager.default.contents(atPath: url.path) ?? Data(), as: UTF8.self)
            close(fd)
            guard reason == EWOULDBLOCK else {
                throw ClusterError(.stateFailed, "cannot lock \(url.path): \(String(cString: strerror(reason)))")
            }
            throw ClusterError(.busy, busyMessage(name, holder: holder))
        }
        let text = "pid \(getpid())\nstarted \(Date().formatted(.iso8601))\noperation \(operation)\n"
        ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        return ClusterLock(descriptor: fd)
    }

    /// "cluster NAME is being brought up by pid N (started …); wait for it or stop it".
    static func busyMessage(_ name: String, holder: String) -> String {
        var fields: [String: String] = [:]
        for line in holder.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            if parts.count == 2 { fields[parts[0]] = parts[1] }
        }
        let operation = fields["operation"] ?? "brought up or taken down"
        guard let pid = fields["pid"] else {
            return "cluster \(name) is being \(operation) by another process; wait for it or stop it"
        }
        return "cluster \(name) is being \(operation) by pid \(pid)\(fields["started"].map { " (started \($0))" } ?? ""); wait for it or stop it (kill \(pid))"
    }

    /// Lets the next `up` or `down` of the cluster go (closing the file drops the lock).
    func release() {
        // Empty the file first, so that a reader never names a process that is done.
        ftruncate(descriptor, 0)
        close(descriptor)
    }
}
