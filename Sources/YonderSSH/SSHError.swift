/// The one error the SSH layer throws.
///
/// Switch on ``code`` to act on it; ``description`` says what happened, to which host, and
/// what to do. When libssh2 reported the failure, ``libssh2Code`` and ``libssh2Message`` hold
/// what it said (`LIBSSH2_ERROR_*`). No error ever holds a password or a passphrase.
public struct SSHError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The host's name did not resolve, or no route reaches it.
        public static let unreachable = Code("unreachable")
        /// The host answered, but nothing listens on the port.
        public static let refused = Code("refused")
        /// Connecting, the handshake or authentication took longer than the connect timeout.
        public static let timedOut = Code("timedOut")
        /// The host's key is not in the known hosts and the policy refuses new keys.
        public static let hostKeyUnknown = Code("hostKeyUnknown")
        /// The host's key differs from the one recorded or pinned for it.
        public static let hostKeyChanged = Code("hostKeyChanged")
        /// Every authentication method failed.
        public static let authenticationFailed = Code("authenticationFailed")
        /// The server refused to open a channel, run a command or forward a port.
        public static let channelFailed = Code("channelFailed")
        /// The connection dropped, or the server stopped answering keep-alives.
        public static let connectionLost = Code("connectionLost")
        /// An SFTP request failed; ``SSHError/sftpStatus`` holds the server's status code.
        public static let sftpFailed = Code("sftpFailed")
        /// A local file could not be read or written.
        public static let localFile = Code("localFile")
        /// The SSH handshake failed: no common algorithm, or a protocol error.
        public static let handshakeFailed = Code("handshakeFailed")
        /// The task was cancelled; the channel it used is closed.
        public static let cancelled = Code("cancelled")
        /// The session or channel was closed by this side before the operation ran.
        public static let closed = Code("closed")
        /// A value passed in cannot be used (an empty user name, a bad fingerprint…).
        public static let invalidArgument = Code("invalidArgument")
    }

    /// What kind of failure this is.
    public let code: Code
    /// A sentence a person can act on.
    public let message: String
    /// libssh2's error code (`LIBSSH2_ERROR_*`), when libssh2 reported the failure.
    public let libssh2Code: Int32?
    /// libssh2's own message, when libssh2 reported the failure.
    public let libssh2Message: String?
    /// The SFTP status (`LIBSSH2_FX_*`) of a failed SFTP request.
    public let sftpStatus: UInt?
    /// The SHA256 fingerprint of the host's key, as OpenSSH prints it, for host-key errors.
    public let fingerprint: String?

    /// Makes an error; `message` must hold no secret.
    public init(
        _ code: Code, _ message: String, libssh2Code: Int32? = nil, libssh2Message: String? = nil,
        sftpStatus: UInt? = nil, fingerprint: String? = nil
    ) {
        self.code = code
        self.message = message
        self.libssh2Code = libssh2Code
        self.libssh2Message = libssh2Message
        self.sftpStatus = sftpStatus
        self.fingerprint = fingerprint
    }

    public var description: String {
        var text = message
        if let libssh2Code {
            text += " (libssh2 \(libssh2Code)"
            if let libssh2Message, !libssh2Message.isEmpty { text += ": \(libssh2Message)" }
            text += ")"
        }
        return text
    }

    @inline(never)
    static func closed(_ what: String) -> SSHError {
        SSHError(.closed, "\(what) is closed")
    }

    @inline(never)
    static func cancelled(_ what: String) -> SSHError {
        SSHError(.cancelled, "\(what) was cancelled; its channel is closed")
    }
}
