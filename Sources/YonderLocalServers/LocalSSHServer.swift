public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A private OpenSSH `sshd` on 127.0.0.1: its own config, host key and authorized_keys in
/// one folder, a free port, logging in as the current user. Used by the tests and the
/// benchmarks; ``stop()`` (or deinit) kills it and every connection process it forked.
public final class LocalSSHServer: @unchecked Sendable {
    // Safe: every stored property but `reaped` is set in init and then only read; `reaped`
    // is behind `lock`.
    public static let sshdPath = "/usr/sbin/sshd"
    public static let keygenPath = "/usr/bin/ssh-keygen"

    /// Whether sshd and ssh-keygen are installed.
    public static var toolsInstalled: Bool {
        FileManager.default.isExecutableFile(atPath: sshdPath) && FileManager.default.isExecutableFile(atPath: keygenPath)
    }

    /// The folder holding the config, the log and known_hosts.
    public let folder: URL
    /// Always 127.0.0.1.
    public let host = "127.0.0.1"
    /// The port sshd listens on.
    public let port: Int
    /// The user it logs in (the current user).
    public let user: String
    /// The server's host public key line ("ssh-ed25519 AAAA…").
    public let hostPublicKey: String
    /// A known_hosts file holding the server's key under `[127.0.0.1]:PORT`.
    public let knownHosts: String
    private let pid: pid_t
    private let lock = NSLock()
    private var reaped = false
    private var detached = false

    /// Starts sshd with the host key at `hostKey` (a private key file), accepting the
    /// public keys in `authorizedKeys`. `extraConfiguration` lines (such as
    /// "PasswordAuthentication yes") take precedence over the defaults.
    public init(folder: URL, hostKey: String, authorizedKeys: String, extraConfiguration: [String] = []) throws {
        guard Self.toolsInstalled else {
            throw LocalServerError("sshd or ssh-keygen is missing; install openssh-server and openssh-client (apt-get install openssh-server)")
        }
        self.folder = folder
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        user = ProcessInfo.processInfo.environment["USER"] ?? String(cString: getpwuid(getuid())!.pointee.pw_name)
        let path = { (name: String) in folder.appendingPathComponent(name).path }
        hostPublicKey = try String(contentsOfFile: hostKey + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        if getuid() == 0 {
            // sshd's privilege separation needs this folder when it runs as root.
            try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        }
        var lastError = ""
        for _ in 0..<5 {
            let port = try Self.freePort()
            // sshd takes the first value it reads for a keyword: the extra lines go first.
            let config = extraConfiguration.map { $0 + "\n" }.joined() + """
                Port \(port)
                ListenAddress 127.0.0.1
                HostKey \(hostKey)
                PidFile \(path("sshd.pid"))
                AuthorizedKeysFile \(authorizedKeys)
                StrictModes no
                UsePAM no
                PubkeyAuthentication yes
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                PermitRootLogin yes
                AllowTcpForwarding yes
                PermitTTY yes
                MaxSessions 200
                MaxStartups 200
                AcceptEnv YONDER_*
                LogLevel ERROR
                Subsystem sftp internal-sftp

                """
            try config.write(toFile: path("sshd_config"), atomically: true, encoding: .utf8)
            // sshd gets a minimal environment: nothing of this process's (which may hold a
            // registry password) shows in /proc/PID/environ or reaches its sessions.
            let pid = try ChildProcess.spawn(Self.sshdPath, ["-D", "-e", "-f", path("sshd_config")], environment: Self.minimalEnvironment, output: path("sshd.log"))
            if Self.waitForListener(port: port, pid: pid) {
                self.port = port
                self.pid = pid
                try SSHDRecord.write(processID: pid, folder: folder)
                knownHosts = path("known_hosts")
                try "[127.0.0.1]:\(port) \(hostPublicKey)\n".write(toFile: knownHosts, atomically: true, encoding: .utf8)
                return
            }
            kill(pid, SIGKILL)
            ChildProcess.wait(pid)
            lastError = (try? String(contentsOfFile: path("sshd.log"), encoding: .utf8)) ?? ""
        }
        throw LocalServerError("sshd did not start on 127.0.0.1: \(lastError)")
    }

    deinit {
        if !lock.withLock({ detached }) { stop() }
    }

    /// Leaves sshd running after this object (and this process) is gone: a `local` cluster's
    /// node outlives the `up` that started it. Stop it later with ``stop(processID:folder:)``.
    public func detach() { lock.withLock { detached = true } }

    /// Kills a detached sshd started earlier in `folder` (by pid) and the processes below it,
    /// only when the process is verified to be that sshd (see ``isRunning(processID:folder:)``):
    /// a pid reused by another program is left alone. Returns whether nothing of it runs now.
    @discardableResult
    public static func stop(processID: pid_t, folder: URL) -> Bool {
        guard processID > 0 else { return true }
        guard isRunning(processID: processID, folder: folder), let started = ProcessInfo.startTime(of: processID) else { return true }
        for target in [processID] + ChildProcess.descendants(of: processID) { kill(target, SIGKILL) }
        // Wait until it is gone or a zombie (a dying process loses its command line before
        // that); reap it when it is this process's child (else waitpid fails with ECHILD).
        for _ in 0..<400 {
            _ = waitpid(processID, nil, WNOHANG)
            if ProcessInfo.startTime(of: processID) != started {
                // It may have become a zombie just after the waitpid above: reap it now, or a
                // zombie of this process would stay behind under its pid.
                _ = waitpid(processID, nil, WNOHANG)
                return true
            }
            usleep(5_000)
        }
        return false
    }

    /// Whether `processID` is the sshd started in `folder`: a live process of the sshd
    /// executable whose command line names `folder`'s sshd_config, and whose start time is
    /// the one recorded when it started. A pid the system gave to another program since is not.
    public static func isRunning(processID: pid_t, folder: URL) -> Bool {
        SSHDRecord.verify(processID: processID, folder: folder, configFile: folder.appendingPathComponent("sshd_config").path)
    }

    /// The environment sshd starts with: a search path, the home folder and the locale.
    static var minimalEnvironment: [String: String] {
        let current = ProcessInfo.processInfo.environment
        return [
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": current["HOME"] ?? NSHomeDirectory(),
            "LANG": current["LANG"] ?? "C.UTF-8",
        ]
    }

    /// The listener's process id.
    public var processID: pid_t { pid }

    /// Kills sshd and every process it forked (the connections' sshd processes too).
    public func stop() {
        signalAll(SIGKILL)
        lock.withLock {
            if !reaped {
                ChildProcess.wait(pid)
                reaped = true
            }
        }
    }

    /// Sends `signal` to sshd and every process below it (SIGSTOP freezes every connection
    /// as a dead network would; SIGCONT thaws them).
    public func signalAll(_ signal: Int32) {
        for target in [pid] + ChildProcess.descendants(of: pid) where target > 0 { kill(target, signal) }
    }

    /// What sshd logged.
    public var log: String { (try? String(contentsOf: folder.appendingPathComponent("sshd.log"), encoding: .utf8)) ?? "" }

    /// Makes a key pair with ssh-keygen at `path` and `path.pub`.
    public static func generateKey(at path: String, type: String = "ed25519", bits: Int? = nil, passphrase: String = "") throws {
        var arguments = ["-q", "-N", passphrase, "-C", "yonder", "-t", type, "-f", path]
        if let bits { arguments += ["-b", String(bits)] }
        try ChildProcess.run(keygenPath, arguments)
    }

    /// The SHA256 fingerprint of a public key file, as ssh-keygen prints it.
    public static func fingerprint(ofPublicKey path: String) throws -> String {
        let line = try ChildProcess.run(keygenPath, ["-l", "-E", "sha256", "-f", path])
        return line.split(separator: " ").first(where: { $0.hasPrefix("SHA256:") }).map(String.init) ?? ""
    }

    /// A port that was free a moment ago on 127.0.0.1.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LocalServerError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw LocalServerError("cannot bind a loopback port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    public static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    private static func waitForListener(port: Int, pid: pid_t) -> Bool {
        for _ in 0..<250 {
            if waitpid(pid, nil, WNOHANG) == pid { return false }
            if canConnect(port: port) { return true }
            usleep(20_000)
        }
        return false
    }
}
