internal import CLibSSH2
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What `stat` says about a remote path.
public struct SFTPAttributes: Sendable, Equatable {
    /// Size in bytes.
    public var size: UInt64
    /// Permission bits (e.g. 0o755), without the file type.
    public var permissions: UInt32
    /// Whether it is a directory.
    public var isDirectory: Bool
    /// Last modification, in seconds since 1970.
    public var modificationTime: UInt64
}

/// File transfer over the session's SFTP subsystem. Transfers stream in chunks: a file is
/// never held whole in memory. Uploads are written under a temporary name in the target's
/// folder and renamed into place, so a reader never sees half a file.
public final class SFTPClient: Sendable {
    /// The session the client runs on.
    public let session: SSHSession
    private let box: SFTPBox
    /// Bytes per request to libssh2, which splits them into pipelined SFTP packets.
    static let chunkSize = 4 << 20

    init(session: SSHSession, box: SFTPBox) {
        self.session = session
        self.box = box
    }

    deinit {
        let box = box
        session.loop.submit { ended in
            if ended == nil { _ = box.shutdownStep() }
        }
    }

    /// Uploads the local file at `localPath` to `remotePath` with permissions `mode`.
    /// `progress` is called with bytes sent so far and the total.
    public func upload(
        from localPath: String, to remotePath: String, mode: UInt32 = 0o644,
        progress: (@Sendable (_ sent: Int64, _ total: Int64) -> Void)? = nil
    ) async throws {
        let fd = open(localPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw SSHError(.localFile, "cannot read \(localPath): \(String(cString: strerror(errno)))")
        }
        defer { Foundation.close(fd) }
        var info = stat()
        fstat(fd, &info)
        let total = Int64(info.st_size)
        let temporary = Self.temporaryName(for: remotePath)
        let handle = try await openHandle(temporary, flags: UInt(LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC), mode: mode)
        do {
            var sent: Int64 = 0
            progress?(0, total)
            while true {
                try Self.checkCancellation("uploading \(localPath) to \(remotePath)")
                let chunk = try Self.readChunk(fd, path: localPath)
                if chunk.isEmpty { break }
                try await write(chunk, to: handle, path: remotePath)
                sent += Int64(chunk.count)
                progress?(sent, total)
            }
            try await setPermissions(handle, mode: mode, path: remotePath)
            try await closeHandle(handle)
            try await rename(temporary, to: remotePath)
        } catch {
            try? await closeHandle(handle)
            try? await remove(temporary)
            throw error
        }
    }

    /// Downloads `remotePath` to `localPath` (written under a temporary name beside it, then
    /// renamed). `progress` is called with bytes received so far and the total.
    public func download(
        from remotePath: String, to localPath: String,
        progress: (@Sendable (_ received: Int64, _ total: Int64) -> Void)? = nil
    ) async throws {
        guard let attributes = try await attributes(remotePath) else {
            throw SSHError(.sftpFailed, "\(remotePath) does not exist on \(session.configuration.destination)", sftpStatus: UInt(LIBSSH2_FX_NO_SUCH_FILE))
        }
        let temporary = Self.temporaryName(for: localPath)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode_t(attributes.permissions & 0o777))
        guard fd >= 0 else {
            throw SSHError(.localFile, "cannot write \(temporary): \(String(cString: strerror(errno)))")
        }
        let handle: SFTPHandle
        do {
            handle = try await openHandle(remotePath, flags: UInt(LIBSSH2_FXF_READ), mode: 0)
        } catch {
            Foundation.close(fd)
            unlink(temporary)
            throw error
        }
        do {
            var received: Int64 = 0
            let total = Int64(attributes.size)
            progress?(0, total)
            while let chunk = try await read(handle, path: remotePath) {
                try Self.checkCancellation("downloading \(remotePath) to \(localPath)")
                try Self.writeAll(fd, chunk, path: temporary)
                received += Int64(chunk.count)
                progress?(received, total)
            }
            try await closeHandle(handle)
            guard Foundation.close(fd) == 0, Foundation.rename(temporary, localPath) == 0 else {
                throw SSHError(.localFile, "cannot move \(temporary) to \(localPath): \(String(cString: strerror(errno)))")
            }
        } catch {
            try? await closeHandle(handle)
            Foundation.close(fd)
            unlink(temporary)
            throw error
        }
    }

    /// Throws `cancelled` when the calling task was cancelled: a transfer looks between its
    /// pieces, so that an interrupted one stops (and removes its partial file) within a piece,
    /// not at its end. The SFTP session stays usable.
    private static func checkCancellation(_ what: @autoclosure () -> String) throws(SSHError) {
        if Task.isCancelled { throw SSHError(.cancelled, "\(what()) was cancelled; the partial file was removed") }
    }

    /// The attributes of `path`, or nil when it does not exist.
    public func attributes(_ path: String) async throws -> SFTPAttributes? {
        let box = box
        return try await session.loop.perform("stat \(path)", gate: box) { loop -> SFTPAttributes?? in
            let sftp = try box.get()
            var attributes = LIBSSH2_SFTP_ATTRIBUTES()
            let rc = path.withUTF8Length { pointer, length in
                libssh2_sftp_stat_ex(sftp, pointer, length, LIBSSH2_SFTP_STAT, &attributes)
            }
            if rc == LIBSSH2_ERROR_EAGAIN { return nil }
            if rc == 0 {
                let mode = UInt32(attributes.permissions)
                return .some(SFTPAttributes(
                    size: attributes.filesize, permissions: mode & 0o7777,
                    isDirectory: mode & UInt32(LIBSSH2_SFTP_S_IFMT) == UInt32(LIBSSH2_SFTP_S_IFDIR),
                    modificationTime: UInt64(attributes.mtime)))
            }
            let error = box.error(rc, loop, "stat \(path)")
            if error.sftpStatus == UInt(LIBSSH2_FX_NO_SUCH_FILE) || error.sftpStatus == UInt(LIBSSH2_FX_NO_SUCH_PATH) {
                return .some(nil)
            }
            throw error
        }
    }

    /// Creates `path` and any missing parents (like `mkdir -p`).
    public func makeDirectory(_ path: String, mode: UInt32 = 0o755) async throws {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if let existing = try await attributes(prefix) {
                guard existing.isDirectory else {
                    throw SSHError(.sftpFailed, "cannot create \(path): \(prefix) exists and is not a folder", sftpStatus: UInt(LIBSSH2_FX_NOT_A_DIRECTORY))
                }
                continue
            }
            let box = box, current = prefix
            do {
                try await session.loop.perform("mkdir \(current)", gate: box) { loop -> Void? in
                    let sftp = try box.get()
                    let rc = current.withUTF8Length { pointer, length in
                        libssh2_sftp_mkdir_ex(sftp, pointer, length, Int(mode))
                    }
                    if rc == LIBSSH2_ERROR_EAGAIN { return nil }
                    if rc < 0 { throw box.error(rc, loop, "creating the folder \(current)") }
                    return ()
                }
            } catch {
                // Someone else may have made it meanwhile.
                if try await attributes(current)?.isDirectory != true { throw error }
            }
        }
    }

    /// Removes the file at `path`; a missing file is not an error.
    public func remove(_ path: String) async throws {
        let box = box
        try await session.loop.perform("remove \(path)", gate: box) { loop -> Void? in
            let sftp = try box.get()
            let rc = path.withUTF8Length { pointer, length in libssh2_sftp_unlink_ex(sftp, pointer, length) }
            if rc == LIBSSH2_ERROR_EAGAIN { return nil }
            if rc < 0 {
                let error = box.error(rc, loop, "removing \(path)")
                if error.sftpStatus == UInt(LIBSSH2_FX_NO_SUCH_FILE) { return () }
                throw error
            }
            return ()
        }
    }

    /// Renames `source` to `target`, replacing `target` if it exists.
    public func rename(_ source: String, to target: String) async throws {
        let box = box
        let attempt = { () async throws -> SSHError? in
            try await self.session.loop.perform("rename \(source)", gate: box) { loop -> SSHError?? in
                let sftp = try box.get()
                let rc = source.withUTF8Length { s, sl in
                    target.withUTF8Length { t, tl in
                        libssh2_sftp_rename_ex(sftp, s, sl, t, tl, Int(LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC | LIBSSH2_SFTP_RENAME_NATIVE))
                    }
                }
                if rc == LIBSSH2_ERROR_EAGAIN { return nil }
                if rc < 0 { return .some(box.error(rc, loop, "renaming \(source) to \(target)")) }
                return .some(nil)
            }
        }
        guard let failure = try await attempt() else { return }
        // SFTP version 3 (OpenSSH) refuses to rename over an existing file: remove it first.
        guard failure.code == .sftpFailed, try await attributes(target) != nil else { throw failure }
        try await remove(target)
        if let again = try await attempt() { throw again }
    }

    /// Ends the SFTP subsystem (the session stays open).
    public func close() async {
        let box = box
        _ = try? await session.loop.perform("closing SFTP", gate: box) { _ -> Void? in box.shutdownStep() ? () : nil }
    }

    // MARK: Handles

    private func openHandle(_ path: String, flags: UInt, mode: UInt32) async throws -> SFTPHandle {
        let box = box
        return try await session.loop.perform("open \(path)", gate: box) { loop -> SFTPHandle? in
            let sftp = try box.get()
            let raw = path.withUTF8Length { pointer, length in
                libssh2_sftp_open_ex(sftp, pointer, length, flags, Int(mode), LIBSSH2_SFTP_OPENFILE)
            }
            if let raw { return SFTPHandle(raw: raw) }
            let code = libssh2_session_last_errno(loop.raw)
            if code == LIBSSH2_ERROR_EAGAIN { return nil }
            throw box.error(code, loop, "opening \(path)")
        }
    }

    private func write(_ chunk: [UInt8], to handle: SFTPHandle, path: String) async throws {
        let box = box
        final class Progress: @unchecked Sendable { var offset = 0 }  // Safe: loop thread only.
        let progress = Progress()
        try await session.loop.perform("writing \(path)", gate: box) { loop -> Void? in
            while progress.offset < chunk.count {
                let rc = chunk.withUnsafeBytes { buffer in
                    libssh2_sftp_write(handle.raw, buffer.baseAddress!.assumingMemoryBound(to: CChar.self) + progress.offset, buffer.count - progress.offset)
                }
                if rc == Int(LIBSSH2_ERROR_EAGAIN) { return nil }
                if rc < 0 { throw box.error(Int32(rc), loop, "writing \(path)") }
                progress.offset += rc
            }
            return ()
        }
    }

    private func read(_ handle: SFTPHandle, path: String) async throws -> [UInt8]? {
        let box = box
        return try await session.loop.perform("reading \(path)", gate: box) { loop -> [UInt8]?? in
            let rc = libssh2_sftp_read(handle.raw, loop.scratch.assumingMemoryBound(to: CChar.self), SessionLoop.scratchSize)
            if rc == Int(LIBSSH2_ERROR_EAGAIN) { return nil }
            if rc < 0 { throw box.error(Int32(rc), loop, "reading \(path)") }
            if rc == 0 { return .some(nil) }
            return .some([UInt8](UnsafeRawBufferPointer(start: loop.scratch, count: rc)))
        }
    }

    private func setPermissions(_ handle: SFTPHandle, mode: UInt32, path: String) async throws {
        let box = box
        try await session.loop.perform("chmod \(path)", gate: box) { loop -> Void? in
            var attributes = LIBSSH2_SFTP_ATTRIBUTES()
            attributes.flags = UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS)
            attributes.permissions = UInt(mode)
            let rc = libssh2_sftp_fstat_ex(handle.raw, &attributes, 1)
            if rc == LIBSSH2_ERROR_EAGAIN { return nil }
            if rc < 0 { throw box.error(rc, loop, "setting the mode of \(path)") }
            return ()
        }
    }

    private func closeHandle(_ handle: SFTPHandle) async throws {
        try await session.loop.perform("closing a file", gate: box) { _ -> Void? in
            if handle.closed { return () }
            let rc = libssh2_sftp_close_handle(handle.raw)
            if rc == LIBSSH2_ERROR_EAGAIN { return nil }
            handle.closed = true
            return ()
        }
    }

    // MARK: Local files

    private static func temporaryName(for path: String) -> String {
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        return "\(folder).\(name).yonder-\(UInt32.random(in: 0...UInt32.max)).tmp"
    }

    private static func readChunk(_ fd: Int32, path: String) throws -> [UInt8] {
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        var filled = 0
        while filled < chunkSize {
            let n = chunk.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress! + filled, chunkSize - filled) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SSHError(.localFile, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            filled += n
        }
        chunk.removeSubrange(filled...)
        return chunk
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SSHError(.localFile, "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            written += n
        }
    }
}

/// An open remote file (loop thread only).
final class SFTPHandle: @unchecked Sendable {
    // Safe: used only inside jobs on the session's loop thread.
    let raw: OpaquePointer
    var closed = false
    init(raw: OpaquePointer) { self.raw = raw }
}

/// The libssh2 SFTP session (loop thread only).
final class SFTPBox: @unchecked Sendable {
    // Safe: used only inside jobs on the session's loop thread.
    private var raw: OpaquePointer?
    let destination: String

    init(raw: OpaquePointer, destination: String) {
        self.raw = raw
        self.destination = destination
    }

    func get() throws -> OpaquePointer {
        guard let raw else { throw SSHError.closed("the SFTP client of \(destination)") }
        return raw
    }

    /// An error for a failed SFTP call, with the server's status when it sent one.
    func error(_ rc: Int32, _ loop: SessionLoop, _ what: String) -> SSHError {
        if rc == LIBSSH2_ERROR_SFTP_PROTOCOL, let raw {
            let status = libssh2_sftp_last_error(raw)
            return SSHError(.sftpFailed, "\(what) on \(destination) failed: \(Self.statusName(status))", libssh2Code: rc, sftpStatus: status)
        }
        return loop.error(rc, .sftpFailed, what)
    }

    /// One attempt to end the subsystem; true when done.
    func shutdownStep() -> Bool {
        guard let current = raw else { return true }
        if libssh2_sftp_shutdown(current) == LIBSSH2_ERROR_EAGAIN { return false }
        raw = nil
        return true
    }

    static func statusName(_ status: UInt) -> String {
        switch status {
        case UInt(LIBSSH2_FX_EOF): "end of file"
        case UInt(LIBSSH2_FX_NO_SUCH_FILE): "no such file"
        case UInt(LIBSSH2_FX_PERMISSION_DENIED): "permission denied"
        case UInt(LIBSSH2_FX_FAILURE): "failure"
        case UInt(LIBSSH2_FX_NO_SUCH_PATH): "no such path"
        case UInt(LIBSSH2_FX_FILE_ALREADY_EXISTS): "file already exists"
        case UInt(LIBSSH2_FX_WRITE_PROTECT): "write protected"
        case UInt(LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM): "no space left"
        case UInt(LIBSSH2_FX_QUOTA_EXCEEDED): "quota exceeded"
        case UInt(LIBSSH2_FX_DIR_NOT_EMPTY): "folder not empty"
        case UInt(LIBSSH2_FX_NOT_A_DIRECTORY): "not a folder"
        default: "SFTP status \(status)"
        }
    }
}

extension SSHSession {
    /// Starts the server's SFTP subsystem.
    public func sftp() async throws -> SFTPClient {
        let destination = configuration.destination
        let box = try await loop.perform("starting SFTP", gate: loop.channelOpenGate) { loop -> SFTPBox? in
            if let raw = libssh2_sftp_init(loop.raw) { return SFTPBox(raw: raw, destination: destination) }
            let code = libssh2_session_last_errno(loop.raw)
            if code == LIBSSH2_ERROR_EAGAIN { return nil }
            throw loop.error(code, .channelFailed, "starting the SFTP subsystem (is it enabled in sshd_config?)")
        }
        return SFTPClient(session: self, box: box)
    }
}
