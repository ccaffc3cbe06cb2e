public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A private OpenSSH `sshd` on 127.0.0.1 for tests: its own host key, client keys and
/// authorized_keys in a temporary folder, on a free port, logging in as the current user.
/// Any test that needs an SSH server starts one; ``stop()`` (or deinit) kills it and every
/// connection process it forked.
public final class SSHServerFixture: @unchecked Sendable {
    // Safe: every stored property is set in init and then only read; `process` is used
    // from one test at a time.
    public static let sshdPath = "/usr/sbin/sshd"
    public static let keygenPath = "/usr/bin/ssh-keygen"

    /// Whether sshd and ssh-keygen are installed.
    public static var toolsInstalled: Bool {
        FileManager.default.isExecutableFile(atPath: sshdPath) && FileManager.default.isExecutableFile(atPath: keygenPath)
    }

    /// Whether SSH tests run: the tools are installed, or this is CI (where their absence is
    /// a failure, reported by ``init()``).
    public static var shouldRun: Bool {
        if toolsInstalled { return true }
        if !runningUnderCI {
            print("SSH tests skipped: install openssh-server and openssh-client (apt-get install openssh-server)")
        }
        return runningUnderCI
    }

    /// The folder holding keys, config and known_hosts.
    public let folder: URL
    public let host = "127.0.0.1"
    public let port: Int
    public let user: String
    /// A client key (ed25519, no passphrase) in authorized_keys.
    public let clientKey: String
    /// A client key (ed25519) protected by ``passphrase``, in authorized_keys.
    public let passphraseKey: String
    public let passphrase = "correct horse battery staple"
    /// An ECDSA and an RSA client key, in authorized_keys.
    public let ecdsaKey: String
    public let rsaKey: String
    /// A key that is not in authorized_keys.
    public let strangerKey: String
    /// The server's host public key line ("ssh-ed25519 AAAA…").
    public let hostPublicKey: String
    /// Its SHA256 fingerprint as ssh-keygen prints it.
    public let hostFingerprint: String
    /// A known_hosts file holding the server's key under `[127.0.0.1]:PORT`.
    public let knownHosts: String
    private let process: pid_t
    private let stopLock = NSLock()
    private var reaped = false

    public init() throws {
        guard Self.toolsInstalled else {
            throw RawFrameError("sshd or ssh-keygen is missing; install openssh-server and openssh-client")
        }
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-sshd-\(UUID().uuidString.prefix(8))")
        folder = base
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        user = ProcessInfo.processInfo.environment["USER"] ?? String(cString: getpwuid(getuid())!.pointee.pw_name)
        let path = { (name: String) in base.appendingPathComponent(name).path }

        // Keys are made once per test process (RSA generation is slow) and copied per server.
        let keys = try Self.sharedKeys()
        for name in ["host_ed25519", "id_ed25519", "id_passphrase", "id_ecdsa", "id_rsa", "id_stranger"] {
            for suffix in ["", ".pub"] {
                try FileManager.default.copyItem(atPath: keys.appendingPathComponent(name + suffix).path, toPath: path(name + suffix))
            }
            chmod(path(name), 0o600)
        }
        clientKey = path("id_ed25519")
        passphraseKey = path("id_passphrase")
        ecdsaKey = path("id_ecdsa")
        rsaKey = path("id_rsa")
        strangerKey = path("id_stranger")
        var authorized = ""
        for key in ["id_ed25519", "id_passphrase", "id_ecdsa", "id_rsa"] {
            authorized += try String(contentsOfFile: path(key + ".pub"), encoding: .utf8)
        }
        try authorized.write(toFile: path("authorized_keys"), atomically: true, encoding: .utf8)
        hostPublicKey = try String(contentsOfFile: path("host_ed25519.pub"), encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let fingerprintLine = try Self.runTool(Self.keygenPath, ["-l", "-E", "sha256", "-f", path("host_ed25519.pub")])
        hostFingerprint = fingerprintLine.split(separator: " ").first(where: { $0.hasPrefix("SHA256:") }).map(String.init) ?? ""

        if getuid() == 0 {
            // sshd's privilege separation needs this folder when it runs as root.
            try? FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        }
        var lastError = ""
        for _ in 0..<5 {
            let port = try Self.freePort()
            let config = """
                Port \(port)
                ListenAddress 127.0.0.1
                HostKey \(path("host_ed25519"))
                PidFile \(path("sshd.pid"))
                AuthorizedKeysFile \(path("authorized_keys"))
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
                PubkeyAcceptedAlgorithms +ssh-rsa
                LogLevel ERROR
                Subsystem sftp internal-sftp

                """
            try config.write(toFile: path("sshd_config"), atomically: true, encoding: .utf8)
            let process = try Self.spawn(Self.sshdPath, ["-D", "-e", "-f", path("sshd_config")], output: path("sshd.log"))
            if Self.waitForListener(port: port, process: process) {
                self.port = port
                self.process = process
                knownHosts = path("known_hosts")
                try "[127.0.0.1]:\(port) \(hostPublicKey)\n".write(toFile: path("known_hosts"), atomically: true, encoding: .utf8)
                return
            }
            kill(process, SIGKILL)
            waitpid(process, nil, 0)
            lastError = (try? String(contentsOfFile: path("sshd.log"), encoding: .utf8)) ?? ""
        }
        throw RawFrameError("sshd did not start: \(lastError)")
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: folder)
    }

    /// The listener's process id.
    public var pid: Int32 { process }

    /// Kills sshd and every process it forked (the connections' sshd processes too).
    public func stop() {
        signalAll(SIGKILL)
        stopLock.withLock {
            if !reaped {
                waitpid(process, nil, 0)
                reaped = true
            }
        }
    }

    /// Sends `signal` to sshd and every process below it (SIGSTOP freezes every connection
    /// as a dead network would; SIGCONT thaws them).
    public func signalAll(_ signal: Int32) {
        let pids = [process] + Self.descendants(of: process)
        for pid in pids where pid > 0 { kill(pid, signal) }
    }

    /// What sshd logged.
    public var log: String { (try? String(contentsOf: folder.appendingPathComponent("sshd.log"), encoding: .utf8)) ?? "" }

    // MARK: Helpers

    private static let keyLock = NSLock()
    nonisolated(unsafe) private static var keyFolder: URL?  // Safe: behind keyLock.

    /// A folder of keys made on first use: host key, client keys of each type, a
    /// passphrase-protected one and a stranger's.
    private static func sharedKeys() throws -> URL {
        try keyLock.withLock {
            if let keyFolder { return keyFolder }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-test-keys-\(getpid())")
            try? FileManager.default.removeItem(at: folder)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let path = { (name: String) in folder.appendingPathComponent(name).path }
            try keygen(["-t", "ed25519", "-f", path("host_ed25519")])
            try keygen(["-t", "ed25519", "-f", path("id_ed25519")])
            try keygen(["-t", "ed25519", "-f", path("id_passphrase")], passphrase: "correct horse battery staple")
            try keygen(["-t", "ecdsa", "-b", "256", "-f", path("id_ecdsa")])
            try keygen(["-t", "rsa", "-b", "3072", "-f", path("id_rsa")])
            try keygen(["-t", "ed25519", "-f", path("id_stranger")])
            keyFolder = folder
            return folder
        }
    }

    static func keygen(_ arguments: [String], passphrase: String = "") throws {
        _ = try runTool(keygenPath, ["-q", "-N", passphrase, "-C", "yonder-test"] + arguments)
    }

    /// Runs a tool to its end and returns its standard output; throws on a non-zero status.
    /// Uses posix_spawn and waitpid, which work from any thread, async tests included.
    @discardableResult
    public static func runTool(_ path: String, _ arguments: [String], environment: [String: String]? = nil) throws -> String {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-tool-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: output) }
        let pid = try spawn(path, arguments, environment: environment, output: output.path)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw RawFrameError("\(path) \(arguments.joined(separator: " ")) failed (status \(status)): \(text)")
        }
        return text
    }

    /// Starts a process with stdout and stderr going to `output` (or /dev/null); returns its pid.
    public static func spawn(_ path: String, _ arguments: [String], environment: [String: String]? = nil, output: String? = nil) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        let env = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for entry in env { free(entry) } }
        // A child inherits the signal mask of the spawning thread, and the threads tests run
        // on block signals: start it with none blocked and default handlers.
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
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, argv, env)
        guard rc == 0 else { throw RawFrameError("cannot start \(path): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// A port that was free a moment ago on 127.0.0.1.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RawFrameError("socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw RawFrameError("bind() failed") }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private static func waitForListener(port: Int, process: pid_t) -> Bool {
        for _ in 0..<200 {
            if waitpid(process, nil, WNOHANG) == process { return false }
            if canConnect(port: port) { return true }
            usleep(20_000)
        }
        return false
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

    /// Every process below `pid`, read from /proc.
    static func descendants(of pid: Int32) -> [Int32] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var parent: [Int32: Int32] = [:]
        for entry in entries {
            guard let child = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 2, let ppid = Int32(fields[1]) { parent[child] = ppid }
        }
        var result: [Int32] = []
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
