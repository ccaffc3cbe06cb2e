internal import CLibSSH2
import Foundation

/// Logs the session in with the configured methods, in order.
enum Authenticator {
    static func authenticate(loop: SessionLoop, configuration: SSHConfiguration, deadline: ContinuousClock.Instant) async throws {
        let user = configuration.user
        // nil: the server accepted "none" (no authentication needed).
        let offered: [String]? = try await loop.perform("authentication", deadline: deadline) { loop -> [String]?? in
            let list = user.withUTF8Length { pointer, length in libssh2_userauth_list(loop.raw, pointer, length) }
            if let list { return .some(String(cString: list).split(separator: ",").map(String.init)) }
            if libssh2_userauth_authenticated(loop.raw) != 0 { return .some(nil) }
            let (code, _) = loop.lastError()
            if code == LIBSSH2_ERROR_EAGAIN { return nil }
            throw loop.error(code, .authenticationFailed, "asking \(configuration.destination) for its authentication methods")
        }
        guard let offered else { return }

        var tried: [String] = []
        for method in configuration.authentication {
            guard offered.contains(method.methodName) else {
                tried.append("\(method): skipped, the server does not offer \(method.methodName)")
                continue
            }
            let outcome: String?
            switch method {
            case .privateKey(let path, let passphrase):
                outcome = try await privateKey(path: HostKeyVerifier.expandTilde(path), passphrase: passphrase, user: user, loop: loop, deadline: deadline)
            case .password(let password):
                outcome = try await loop.perform("password authentication", deadline: deadline) { loop -> String?? in
                    let rc = user.withUTF8Length { userPointer, userLength in
                        password.withUTF8Length { passwordPointer, passwordLength in
                            libssh2_userauth_password_ex(loop.raw, userPointer, userLength, passwordPointer, passwordLength, nil)
                        }
                    }
                    if rc == LIBSSH2_ERROR_EAGAIN { return nil }
                    if rc == 0 { return .some(nil) }
                    if SessionLoop.isConnectionLevel(rc) { throw loop.error(rc, .connectionLost, "password authentication") }
                    return .some("refused by the server")
                }
            case .agent:
                outcome = try await agent(user: user, loop: loop, deadline: deadline)
            }
            guard let outcome else { return }
            tried.append("\(method): \(outcome)")
        }
        throw SSHError(
            .authenticationFailed,
            "authentication to \(configuration.destination) failed. Tried: \(tried.joined(separator: "; ")). The server offers: \(offered.joined(separator: ", ")). Check the key is in the user's authorized_keys on the server")
    }

    /// Returns nil on success, else why the key did not work.
    private static func privateKey(path: String, passphrase: String?, user: String, loop: SessionLoop, deadline: ContinuousClock.Instant) async throws -> String? {
        guard FileManager.default.isReadableFile(atPath: path) else {
            return FileManager.default.fileExists(atPath: path) ? "the file cannot be read" : "no such file"
        }
        return try await loop.perform("public key authentication", deadline: deadline) { loop -> String?? in
            let rc = user.withUTF8Length { userPointer, userLength in
                libssh2_userauth_publickey_fromfile_ex(loop.raw, userPointer, userLength, nil, path, passphrase)
            }
            if rc == LIBSSH2_ERROR_EAGAIN { return nil }
            if rc == 0 { return .some(nil) }
            if SessionLoop.isConnectionLevel(rc) { throw loop.error(rc, .connectionLost, "public key authentication") }
            switch rc {
            case LIBSSH2_ERROR_FILE, LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED:
                return .some(passphrase == nil
                    ? "the key could not be read (it may need a passphrase, or its format is not supported)"
                    : "the key could not be read (wrong passphrase, or its format is not supported)")
            default:
                return .some(isRSA(path)
                    ? "refused by the server (libssh2 1.10 signs with RSA/SHA-1, which OpenSSH 8.8 and later refuse unless PubkeyAcceptedAlgorithms allows ssh-rsa; an ed25519 key avoids this)"
                    : "refused by the server")
            }
        }
    }

    private static func isRSA(_ path: String) -> Bool {
        guard let text = try? String(contentsOfFile: path + ".pub", encoding: .utf8) else { return false }
        return text.hasPrefix("ssh-rsa ")
    }

    /// Tries each identity the agent holds. Returns nil on success, else why none worked.
    private static func agent(user: String, loop: SessionLoop, deadline: ContinuousClock.Instant) async throws -> String? {
        guard ProcessInfo.processInfo.environment["SSH_AUTH_SOCK"] != nil else { return "SSH_AUTH_SOCK is not set" }
        final class AgentState {
            var agent: OpaquePointer?
            var identity: UnsafeMutablePointer<libssh2_agent_publickey>?
            var count = 0
            var started = false
        }
        let state = AgentState()
        return try await loop.perform("agent authentication", deadline: deadline) { loop -> String?? in
            if !state.started {
                state.started = true
                guard let agent = libssh2_agent_init(loop.raw) else { return .some("libssh2 could not make an agent handle") }
                state.agent = agent
                if libssh2_agent_connect(agent) != 0 || libssh2_agent_list_identities(agent) != 0 {
                    libssh2_agent_free(agent)
                    return .some("could not talk to the agent")
                }
                var first: UnsafeMutablePointer<libssh2_agent_publickey>?
                if libssh2_agent_get_identity(agent, &first, nil) != 0 {
                    _ = libssh2_agent_disconnect(agent)
                    libssh2_agent_free(agent)
                    return .some("the agent holds no identity")
                }
                state.identity = first
            }
            guard let agent = state.agent else { return .some("no agent") }
            while let identity = state.identity {
                let rc = libssh2_agent_userauth(agent, user, identity)
                if rc == LIBSSH2_ERROR_EAGAIN { return nil }
                if rc == 0 {
                    _ = libssh2_agent_disconnect(agent)
                    libssh2_agent_free(agent)
                    return .some(nil)
                }
                state.count += 1
                var next: UnsafeMutablePointer<libssh2_agent_publickey>?
                state.identity = libssh2_agent_get_identity(agent, &next, identity) == 0 ? next : nil
            }
            _ = libssh2_agent_disconnect(agent)
            libssh2_agent_free(agent)
            return .some("none of its \(state.count) identities was accepted")
        }
    }
}
