/// Where to connect, as whom, and how to trust the server.
public struct SSHConfiguration: Sendable {
    /// The server's host name or address.
    public var host: String
    /// The server's port.
    public var port: Int
    /// The user to log in as.
    public var user: String
    /// The methods to try, in order; each is tried only when the server offers it.
    public var authentication: [SSHAuthentication]
    /// How the server's host key is checked.
    public var hostKeys: HostKeyPolicy
    /// The bound on TCP connect, handshake and authentication together.
    public var connectTimeout: Duration
    /// How often to send a keep-alive while the server is silent; nil sends none.
    public var keepAliveInterval: Duration?
    /// How many keep-alive intervals of silence mean the connection is lost.
    public var keepAliveCountMax: Int
    /// With the first tunnel, run `true` once on a terminal (in the background), which makes
    /// OpenSSH's sshd switch the connection to interactive mode (TCP_NODELAY). Tunnels then
    /// never wait on Nagle's algorithm. Failures are ignored.
    public var requestInteractiveMode: Bool
    /// A command whose standard input and output carry the connection instead of a TCP
    /// socket, as OpenSSH's `ProxyCommand`: e.g. `ssh -W %h:%p jump.example.com` to go
    /// through a jump host. `%h`, `%p` and `%r` become the host, port and user (quoted for
    /// the shell), `%%` a percent sign. It runs under `/bin/sh` and is ended with the session.
    public var proxyCommand: String?

    /// A configuration with OpenSSH's defaults: port 22, the user's `known_hosts`, a 15 s
    /// connect timeout and a keep-alive every 15 s (lost after 3 silent intervals).
    public init(
        host: String, port: Int = 22, user: String,
        authentication: [SSHAuthentication],
        hostKeys: HostKeyPolicy = .knownHosts(),
        connectTimeout: Duration = .seconds(15),
        keepAliveInterval: Duration? = .seconds(15),
        keepAliveCountMax: Int = 3,
        requestInteractiveMode: Bool = true,
        proxyCommand: String? = nil
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.authentication = authentication
        self.hostKeys = hostKeys
        self.connectTimeout = connectTimeout
        self.keepAliveInterval = keepAliveInterval
        self.keepAliveCountMax = keepAliveCountMax
        self.requestInteractiveMode = requestInteractiveMode
        self.proxyCommand = proxyCommand
    }

    /// `user@host:port`, for messages.
    public var destination: String { "\(user)@\(host):\(port)" }
}

/// One way to prove who the user is. Its description never shows a secret.
public enum SSHAuthentication: Sendable, CustomStringConvertible {
    /// A private key file (OpenSSH or PEM format: ed25519, ECDSA, RSA), with its passphrase
    /// if it has one.
    case privateKey(path: String, passphrase: String? = nil)
    /// The identities held by the ssh-agent at `SSH_AUTH_SOCK`.
    case agent
    /// A password.
    case password(String)

    public var description: String {
        switch self {
        case .privateKey(let path, let passphrase):
            "key \(path)\(passphrase == nil ? "" : " (with passphrase)")"
        case .agent: "ssh-agent"
        case .password: "password"
        }
    }

    /// The SSH method name the server must offer for this way.
    var methodName: String {
        switch self {
        case .privateKey, .agent: "publickey"
        case .password: "password"
        }
    }
}

/// How the server's host key is trusted.
public struct HostKeyPolicy: Sendable {
    enum Kind: Sendable {
        case knownHosts(path: String, acceptNew: Bool)
        case pinned([String])
    }
    let kind: Kind

    /// Check against an OpenSSH `known_hosts` file (plain and hashed entries, `[host]:port`
    /// for ports other than 22). A changed key is always refused; an unknown one is refused
    /// unless `acceptNew`, which records it in the file on first use, like OpenSSH's
    /// `StrictHostKeyChecking=accept-new`.
    public static func knownHosts(_ path: String = "~/.ssh/known_hosts", acceptNew: Bool = false) -> HostKeyPolicy {
        HostKeyPolicy(kind: .knownHosts(path: path, acceptNew: acceptNew))
    }

    /// Trust exactly these keys: each is a SHA256 fingerprint as OpenSSH prints it
    /// (`SHA256:…`) or a public key line (`ssh-ed25519 AAAA… [comment]`).
    public static func pinned(_ keys: [String]) -> HostKeyPolicy {
        HostKeyPolicy(kind: .pinned(keys))
    }
}
