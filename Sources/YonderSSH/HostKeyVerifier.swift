internal import CLibSSH2
import Foundation

/// Checks the server's host key against the policy, on the loop thread after the handshake.
package enum HostKeyVerifier {
    /// The server's key as the handshake left it.
    struct ServerKey {
        let blob: [UInt8]
        let type: Int32
        let fingerprint: String

        /// OpenSSH's name for the key type, as printed in messages ("ED25519").
        var displayType: String {
            switch type {
            case LIBSSH2_HOSTKEY_TYPE_RSA: "RSA"
            case LIBSSH2_HOSTKEY_TYPE_DSS: "DSA"
            case LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_HOSTKEY_TYPE_ECDSA_521: "ECDSA"
            case LIBSSH2_HOSTKEY_TYPE_ED25519: "ED25519"
            default: "unknown"
            }
        }

        var knownHostTypeBit: Int32 {
            switch type {
            case LIBSSH2_HOSTKEY_TYPE_RSA: LIBSSH2_KNOWNHOST_KEY_SSHRSA
            case LIBSSH2_HOSTKEY_TYPE_DSS: LIBSSH2_KNOWNHOST_KEY_SSHDSS
            case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: LIBSSH2_KNOWNHOST_KEY_ECDSA_256
            case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: LIBSSH2_KNOWNHOST_KEY_ECDSA_384
            case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: LIBSSH2_KNOWNHOST_KEY_ECDSA_521
            case LIBSSH2_HOSTKEY_TYPE_ED25519: LIBSSH2_KNOWNHOST_KEY_ED25519
            default: LIBSSH2_KNOWNHOST_KEY_UNKNOWN
            }
        }
    }

    static func serverKey(_ loop: SessionLoop) throws -> ServerKey {
        var length = 0
        var type: Int32 = 0
        guard let key = libssh2_session_hostkey(loop.raw, &length, &type), length > 0 else {
            throw SSHError(.handshakeFailed, "\(loop.destination) sent no host key")
        }
        let blob = [UInt8](UnsafeRawBufferPointer(start: key, count: length))
        guard let hash = libssh2_hostkey_hash(loop.raw, LIBSSH2_HOSTKEY_HASH_SHA256) else {
            throw SSHError(.handshakeFailed, "libssh2 could not hash the host key of \(loop.destination)")
        }
        let digest = Data(UnsafeRawBufferPointer(start: hash, count: 32))
        return ServerKey(blob: blob, type: type, fingerprint: fingerprint(ofDigest: digest))
    }

    /// "SHA256:" and the unpadded base64 of the digest, as `ssh-keygen -l` prints it.
    static func fingerprint(ofDigest digest: Data) -> String {
        var text = digest.base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return "SHA256:" + text
    }

    /// The name OpenSSH's known_hosts uses for this host and port.
    static func knownHostsName(host: String, port: Int) -> String {
        port == 22 ? host : "[\(host)]:\(port)"
    }

    static func verify(_ key: ServerKey, policy: HostKeyPolicy, host: String, port: Int, loop: SessionLoop) throws {
        let name = knownHostsName(host: host, port: port)
        switch policy.kind {
        case .pinned(let pins):
            for pin in pins where matches(pin: pin, key) { return }
            throw SSHError(
                .hostKeyChanged,
                "the \(key.displayType) host key of \(name) (\(key.fingerprint)) is not one of the \(pins.count) pinned key(s); if the server's key was replaced on purpose, update the pinned key",
                fingerprint: key.fingerprint)
        case .knownHosts(let rawPath, let acceptNew):
            let path = expandTilde(rawPath)
            try checkKnownHosts(key, name: name, path: path, acceptNew: acceptNew, loop: loop)
        }
    }

    private static func matches(pin: String, _ key: ServerKey) -> Bool {
        let trimmed = pin.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("SHA256:") {
            var wanted = trimmed
            while wanted.hasSuffix("=") { wanted.removeLast() }
            return wanted == key.fingerprint
        }
        let fields = trimmed.split(separator: " ")
        for field in fields {
            if let data = Data(base64Encoded: String(field)), [UInt8](data) == key.blob { return true }
        }
        return false
    }

    private static func checkKnownHosts(_ key: ServerKey, name: String, path: String, acceptNew: Bool, loop: SessionLoop) throws {
        guard let hosts = libssh2_knownhost_init(loop.raw) else {
            throw SSHError(.handshakeFailed, "libssh2 could not allocate a known-hosts list")
        }
        defer { libssh2_knownhost_free(hosts) }
        if let text = try? String(contentsOfFile: path, encoding: .utf8) {
            // Line by line, so that one entry libssh2 cannot parse (a certificate authority,
            // a key type it does not know) does not hide the others.
            for line in text.split(whereSeparator: \.isNewline) {
                let entry = line.trimmingCharacters(in: .whitespaces)
                if entry.isEmpty || entry.hasPrefix("#") || entry.hasPrefix("@") { continue }
                _ = entry.withUTF8Length { pointer, length in
                    libssh2_knownhost_readline(hosts, pointer, Int(length), LIBSSH2_KNOWNHOST_FILE_OPENSSH)
                }
            }
        }
        let typeMask = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | key.knownHostTypeBit
        let result = key.blob.withUnsafeBytes { blob in
            libssh2_knownhost_checkp(hosts, name, -1, blob.baseAddress!.assumingMemoryBound(to: CChar.self), blob.count, typeMask, nil)
        }
        switch result {
        case LIBSSH2_KNOWNHOST_CHECK_MATCH:
            return
        case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
            throw SSHError(
                .hostKeyChanged,
                "the host key of \(name) has changed: the \(key.displayType) key it sent has fingerprint \(key.fingerprint), which differs from the one recorded in \(path). Someone could be intercepting the connection, or the host was reinstalled; if you know the new key is right, remove the old entry (ssh-keygen -R '\(name)' -f \(path)) and connect again",
                fingerprint: key.fingerprint)
        case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
            guard acceptNew else {
                throw SSHError(
                    .hostKeyUnknown,
                    "the authenticity of host \(name) can't be established: its \(key.displayType) key fingerprint is \(key.fingerprint) and it is not in \(path). Check the fingerprint, then add the key to that file, pin it, or connect with accept-new",
                    fingerprint: key.fingerprint)
            }
            try record(key, name: name, typeMask: typeMask, in: hosts, path: path)
        default:
            let (code, message) = loop.lastError()
            throw SSHError(.handshakeFailed, "checking the host key of \(name) against \(path) failed", libssh2Code: code, libssh2Message: message)
        }
    }

    /// Appends the key to the file as OpenSSH writes it (accept-new).
    private static func record(_ key: ServerKey, name: String, typeMask: Int32, in hosts: OpaquePointer, path: String) throws {
        var entry: UnsafeMutablePointer<libssh2_knownhost>?
        let added = key.blob.withUnsafeBytes { blob in
            libssh2_knownhost_addc(hosts, name, nil, blob.baseAddress!.assumingMemoryBound(to: CChar.self), blob.count, nil, 0, typeMask, &entry)
        }
        var line = [CChar](repeating: 0, count: 8192)
        var length = 0
        guard added == 0, let entry,
            libssh2_knownhost_writeline(hosts, entry, &line, line.count, &length, LIBSSH2_KNOWNHOST_FILE_OPENSSH) == 0
        else {
            throw SSHError(.localFile, "could not format the host key of \(name) for \(path)")
        }
        let text = String(decoding: line.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        do {
            let url = URL(fileURLWithPath: path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            if !FileManager.default.fileExists(atPath: path) {
                _ = FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600])
            }
            let handle = try FileHandle(forWritingTo: url)
            defer { try? handle.close() }
            let end = try handle.seekToEnd()
            if end > 0, let last = try? Data(contentsOf: url).last, last != UInt8(ascii: "\n") {
                try handle.write(contentsOf: Data("\n".utf8))
            }
            try handle.write(contentsOf: Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
        } catch {
            throw SSHError(.localFile, "could not record the host key of \(name) in \(path): \(error.localizedDescription)")
        }
    }

    /// `~/x` with the user's home (from `HOME`); other paths unchanged.
    package static func expandTilde(_ path: String) -> String {
        guard path.hasPrefix("~") else { return path }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        return home + path.dropFirst()
    }
}
