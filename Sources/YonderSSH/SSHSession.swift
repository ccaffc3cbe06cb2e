internal import CLibSSH2
import Foundation
import Synchronization

/// An authenticated SSH connection to one server.
///
/// Open as many channels as you like on one session, from any task: commands
/// (``execute(_:environment:pty:)``), tunnels (``openTunnel(host:port:)``), SFTP
/// (``sftp()``). One thread drives the session; tasks await without blocking.
/// Close it with ``close()``; dropping the last reference closes it too.
public final class SSHSession: Sendable {
    let loop: SessionLoop
    /// What the session was opened with.
    public let configuration: SSHConfiguration
    /// The server's host key fingerprint, as OpenSSH prints it (`SHA256:…`).
    public let hostKeyFingerprint: String
    /// The cipher negotiated for each direction, e.g. "aes128-ctr".
    public let cipher: String
    /// The MAC negotiated, e.g. "hmac-sha2-256".
    public let mac: String
    /// The one-time request that turns on the server's interactive mode, once started.
    private let interactiveRequest = Mutex<Task<Void, Never>?>(nil)

    private init(loop: SessionLoop, configuration: SSHConfiguration, fingerprint: String, cipher: String, mac: String) {
        self.loop = loop
        self.configuration = configuration
        self.hostKeyFingerprint = fingerprint
        self.cipher = cipher
        self.mac = mac
    }

    deinit {
        loop.shutdown(reason: SSHError.closed("the SSH session to \(configuration.destination)"))
    }

    /// Connects, checks the host key and logs in. Throws an ``SSHError`` whose code says
    /// which step failed.
    public static func connect(_ configuration: SSHConfiguration) async throws -> SSHSession {
        guard !configuration.user.isEmpty else {
            throw SSHError(.invalidArgument, "no user name given for \(configuration.host)")
        }
        guard !configuration.authentication.isEmpty else {
            throw SSHError(.invalidArgument, "no authentication method given for \(configuration.destination); pass a key file, the agent or a password")
        }
        let deadline = ContinuousClock.now + configuration.connectTimeout
        let loop = try await SessionLoop.start(configuration)
        do {
            let (fingerprint, cipher, mac) = try await loop.perform("the SSH handshake", deadline: deadline) { loop -> (String, String, String)? in
                let rc = libssh2_session_handshake(loop.raw, libssh2_socket_t(loop.socket))
                if rc == LIBSSH2_ERROR_EAGAIN { return nil }
                if rc != 0 {
                    let (code, message) = loop.lastError()
                    throw SSHError(.handshakeFailed, "the SSH handshake with \(loop.destination) failed; is it an SSH server?", libssh2Code: rc == 0 ? code : rc, libssh2Message: message)
                }
                let key = try HostKeyVerifier.serverKey(loop)
                try HostKeyVerifier.verify(key, policy: configuration.hostKeys, host: configuration.host, port: configuration.port, loop: loop)
                let cipher = libssh2_session_methods(loop.raw, LIBSSH2_METHOD_CRYPT_CS).map { String(cString: $0) } ?? "unknown"
                let mac = libssh2_session_methods(loop.raw, LIBSSH2_METHOD_MAC_CS).map { String(cString: $0) } ?? "unknown"
                return (key.fingerprint, cipher, mac)
            }
            try await Authenticator.authenticate(loop: loop, configuration: configuration, deadline: deadline)
            loop.submit { [loop] ended in if ended == nil { loop.startKeepAlive() } }
            let session = SSHSession(loop: loop, configuration: configuration, fingerprint: fingerprint, cipher: cipher, mac: mac)
            return session
        } catch {
            // Wait for the loop's thread to leave libssh2: a process that exits on this error
            // while the thread still runs a libssh2 call would race OpenSSL's clean-up at exit.
            loop.shutdown(reason: SSHError.closed("the SSH session to \(configuration.destination)"))
            await loop.waitUntilEnded()
            throw error
        }
    }

    /// How many sessions of this process still have a running loop thread (closed ones end
    /// theirs): what tests check to find a session nobody closed.
    package static var openCount: Int { SessionLoop.running }

    /// The version of libssh2 this process runs with.
    public static var libssh2Version: String {
        LibSSH2.initialize()
        return LibSSH2.version
    }

    /// Runs `true` once on a terminal, in the background, before the first tunnel: sshd then
    /// switches the connection to interactive mode (TCP_NODELAY). sshd takes ~80 ms to start
    /// a command, which nobody needs to wait for; channels opened meanwhile share the session.
    func requestInteractiveModeOnce() {
        guard configuration.requestInteractiveMode else { return }
        interactiveRequest.withLock { task in
            guard task == nil else { return }
            task = Task { _ = try? await self.run("true", pty: PTYRequest(term: "dumb", columns: 80, rows: 24)) }
        }
    }

    /// Disconnects. Channels still open fail with a `closed` error.
    public func close() async {
        // Let the interactive-mode command end on its own (up to 2 s) rather than hang up on
        // a shell that may be reading its start-up files.
        if let task = interactiveRequest.withLock({ $0 }) {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await task.value }
                group.addTask { try? await Task.sleep(for: .seconds(2)) }
                await group.next()
                group.cancelAll()
            }
        }
        loop.shutdown(reason: SSHError.closed("the SSH session to \(configuration.destination)"))
        await loop.waitUntilEnded()
    }

    // MARK: Opening channels

    /// Opens a channel, runs the requests that set it up, and hands it to the loop.
    func openChannel(
        kind: ChannelCore.Kind, label: String,
        open: @escaping (SessionLoop) -> OpaquePointer?,
        setup: [(OpaquePointer) -> Int32]
    ) async throws -> ChannelCore {
        final class Opening: @unchecked Sendable {
            // Safe: touched only on the loop thread.
            var raw: OpaquePointer?
            var done = 0
        }
        let opening = Opening()
        // One channel opened and set up at a time per session (see SessionLoop.channelOpenGate):
        // the requests that set it up (pty, env, exec) wait for an answer the same way.
        return try await loop.perform("opening \(label)", gate: loop.channelOpenGate) { loop -> ChannelCore? in
            if opening.raw == nil {
                guard let raw = open(loop) else {
                    let (code, _) = loop.lastError()
                    if code == LIBSSH2_ERROR_EAGAIN { return nil }
                    throw loop.error(code, .channelFailed, "opening \(label)")
                }
                opening.raw = raw
            }
            let raw = opening.raw!
            while opening.done < setup.count {
                let rc = setup[opening.done](raw)
                if rc == LIBSSH2_ERROR_EAGAIN { return nil }
                if rc < 0 {
                    let failure = loop.error(rc, .channelFailed, label)
                    libssh2_channel_free(raw)
                    opening.raw = nil
                    throw failure
                }
                opening.done += 1
            }
            let core = ChannelCore(raw: raw, kind: kind, label: label)
            loop.add(core)
            return core
        }
    }

    /// Waits for the result of a job on the loop thread that resumes exactly once.
    func onLoop<T: Sendable>(_ body: @escaping (SessionLoop, @escaping (Result<T, SSHError>) -> Void) -> Void) async throws -> T {
        let result: Result<T, SSHError> = await withCheckedContinuation { continuation in
            loop.submit { [loop] ended in
                if let ended {
                    continuation.resume(returning: .failure(ended))
                } else {
                    body(loop) { continuation.resume(returning: $0) }
                }
            }
        }
        return try result.get()
    }

    /// Runs a job on the loop thread that needs no answer.
    func onLoop(_ body: @escaping (SessionLoop) -> Void) {
        loop.submit { [loop] ended in
            if ended == nil { body(loop) }
        }
    }
}
