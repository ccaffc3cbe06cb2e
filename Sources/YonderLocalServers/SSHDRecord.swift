import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What identifies a private sshd beyond its pid, which the system reuses once it is gone:
/// `yonder-sshd.pid` in its folder holds the pid and the process's start time (field 22 of
/// /proc/PID/stat, in clock ticks since boot), and its command line names its config file.
enum SSHDRecord {
    static let fileName = "yonder-sshd.pid"

    /// Records `processID` and its start time in `folder`.
    static func write(processID: pid_t, folder: URL) throws {
        guard let start = ProcessInfo.startTime(of: processID) else {
            throw LocalServerError("sshd (pid \(processID)) ended as it started; see \(folder.appendingPathComponent("sshd.log").path)")
        }
        try "\(processID) \(start)\n".write(to: folder.appendingPathComponent(fileName), atomically: true, encoding: .utf8)
    }

    /// The pid and start time recorded in `folder`, if any.
    static func read(folder: URL) -> (processID: pid_t, startTime: UInt64)? {
        guard let text = try? String(contentsOf: folder.appendingPathComponent(fileName), encoding: .utf8) else { return nil }
        let fields = text.split(whereSeparator: \.isWhitespace)
        guard fields.count == 2, let pid = pid_t(fields[0]), let start = UInt64(fields[1]) else { return nil }
        return (pid, start)
    }

    /// Whether `processID` runs the sshd executable with `-f configFile` on its command line
    /// and, when `folder` records a start time for that pid, started at that time. When the
    /// record names another pid (an older sshd), or is missing (a folder made before there
    /// were records), the command line alone decides.
    static func verify(processID: pid_t, folder: URL, configFile: String) -> Bool {
        guard processID > 0, let start = ProcessInfo.startTime(of: processID) else { return false }
        if let record = read(folder: folder), record.processID == processID, record.startTime != start { return false }
        // The executable, when the system lets us read the link (it does for our own user's).
        if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(processID)/exe"),
            URL(fileURLWithPath: executable).lastPathComponent != "sshd"
        {
            return false
        }
        // sshd rewrites its title to "sshd: /usr/sbin/sshd -D -e -f FILE [listener] …"; before
        // that, the arguments are separated by NULs.
        guard let raw = FileManager.default.contents(atPath: "/proc/\(processID)/cmdline") else { return false }
        let text = String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self).trimmingCharacters(in: .whitespaces) + " "
        guard text.hasPrefix("sshd") || text.hasPrefix(LocalSSHServer.sshdPath + " ") else { return false }
        return text.contains(" -f \(configFile) ")
    }
}

extension ProcessInfo {
    /// When process `pid` started (field 22 of /proc/PID/stat, clock ticks since boot); nil
    /// when there is no such process or it is a zombie.
    static func startTime(of pid: pid_t) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after the command's name, which is in parentheses: 3 (state), 4, … 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
        return UInt64(fields[19])
    }
}
