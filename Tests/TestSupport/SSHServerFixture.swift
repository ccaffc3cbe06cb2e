public import Foundation
public import YonderLocalServers

#if canImport(Glibc)
import Glibc
#endif

/// A private sshd for tests (``LocalSSHServer``) with client keys of every kind: ed25519,
/// a passphrase-protected one, ECDSA and RSA in authorized_keys, and a stranger's that is not.
/// Keys are made once per test process and copied into each server's folder.
public final class SSHServerFixture: Sendable {
    /// Whether SSH tests run: the tools are installed, or this is CI (where their absence is
    /// a failure, reported by ``init()``).
    public static var shouldRun: Bool {
        if LocalSSHServer.toolsInstalled { return true }
        if !runningUnderCI {
            print("SSH tests skipped: install openssh-server and openssh-client (apt-get install openssh-server)")
        }
        return runningUnderCI
    }

    public let server: LocalSSHServer
    public var folder: URL { server.folder }
    public var host: String { server.host }
    public var port: Int { server.port }
    public var user: String { server.user }
    public var knownHosts: String { server.knownHosts }
    public var hostPublicKey: String { server.hostPublicKey }
    /// The host key's SHA256 fingerprint as ssh-keygen prints it.
    public let hostFingerprint: String
    /// A client key (ed25519, no passphrase) in authorized_keys.
    public let clientKey: String
    /// A client key (ed25519) protected by ``passphrase``, in authorized_keys.
    public let passphraseKey: String
    public let passphrase = SSHServerFixture.sharedPassphrase
    /// An ECDSA and an RSA client key, in authorized_keys.
    public let ecdsaKey: String
    public let rsaKey: String
    /// A key that is not in authorized_keys.
    public let strangerKey: String

    /// An OpenSSH command that jumps through this server to `target` (`HOST:PORT`, where
    /// `%h` and `%p` may stand for the destination's), as a `ProxyCommand`; `marker`, when
    /// given, tags its command line so a test can find the process.
    public func jumpCommand(to target: String, marker: String? = nil) -> String {
        "ssh -q -i \(clientKey) -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=\(knownHosts) "
            + (marker.map { "-o SetEnv=YONDER_JUMP=\($0) " } ?? "")
            + "-p \(port) -W \(target) \(user)@127.0.0.1"
    }

    public init(extraConfiguration: [String] = []) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-sshd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = { (name: String) in folder.appendingPathComponent(name).path }
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
        hostFingerprint = try LocalSSHServer.fingerprint(ofPublicKey: path("host_ed25519.pub"))
        // libssh2 1.10 signs with RSA/SHA-1 only; let this server accept it so RSA keys can be tested.
        server = try LocalSSHServer(
            folder: folder, hostKey: path("host_ed25519"), authorizedKeys: path("authorized_keys"),
            extraConfiguration: extraConfiguration + ["PubkeyAcceptedAlgorithms +ssh-rsa"])
    }

    deinit {
        server.stop()
        try? FileManager.default.removeItem(at: server.folder)
    }

    /// Kills sshd and every connection process.
    public func stop() { server.stop() }

    /// Sends `signal` to sshd and every process below it.
    public func signalAll(_ signal: Int32) { server.signalAll(signal) }

    /// Runs a tool to its end and returns what it printed; throws on a non-zero status.
    @discardableResult
    public static func runTool(_ path: String, _ arguments: [String], environment: [String: String]? = nil) throws -> String {
        try ChildProcess.run(path, arguments, environment: environment)
    }

    public static let keygenPath = LocalSSHServer.keygenPath
    static let sharedPassphrase = "correct horse battery staple"

    private static let keyLock = NSLock()
    nonisolated(unsafe) private static var keyFolder: URL?  // Safe: behind keyLock.

    /// A folder of keys made on first use.
    private static func sharedKeys() throws -> URL {
        try keyLock.withLock {
            if let keyFolder { return keyFolder }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-test-keys-\(getpid())")
            try? FileManager.default.removeItem(at: folder)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let path = { (name: String) in folder.appendingPathComponent(name).path }
            try LocalSSHServer.generateKey(at: path("host_ed25519"))
            try LocalSSHServer.generateKey(at: path("id_ed25519"))
            try LocalSSHServer.generateKey(at: path("id_passphrase"), passphrase: sharedPassphrase)
            try LocalSSHServer.generateKey(at: path("id_ecdsa"), type: "ecdsa", bits: 256)
            try LocalSSHServer.generateKey(at: path("id_rsa"), type: "rsa", bits: 3072)
            try LocalSSHServer.generateKey(at: path("id_stranger"))
            keyFolder = folder
            return folder
        }
    }
}
