#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import YonderProtocol

/// `yonder.putFile` and `yonder.getFile`: files in pieces, so no frame exceeds the limit.
enum Files {
    static let maximumReadLength = 8 * 1024 * 1024


    static func failure(_ action: String, _ path: String, _ code: Int32 = errno) -> ProtocolError {
        ProtocolError(.fileError, "cannot \(action) \(path): \(errorText(code))", path: ["arguments", "path"])
    }

    static func put(_ input: Payload) throws -> Payload {
        let arguments = try input.decode(as: BuiltinWire.PutFileArguments.self, path: ["arguments"])
        let data = arguments.data
        if arguments.createDirectories ?? true {
            try makeParents(of: arguments.path)
        }
        let flags = O_WRONLY | O_CREAT | O_CLOEXEC | ((arguments.append ?? false) ? O_APPEND : O_TRUNC)
        let fd = open(arguments.path, flags, 0o644)
        guard fd >= 0 else { throw failure("open", arguments.path) }
        defer { close(fd) }
        let bytes = [UInt8](data)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw failure("write", arguments.path)
            }
            offset += written
        }
        if let mode = arguments.mode, fchmod(fd, mode_t(mode & 0o7777)) != 0 {
            throw failure("set the mode of", arguments.path)
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure("stat", arguments.path) }
        return Payload(try JSONValue(encoding: BuiltinWire.PutFileResult(size: Int(info.st_size))))
    }

    /// The bytes go as an attachment, which the agent inlines as base64 for a client that
    /// does not accept attachments.
    static func get(_ input: Payload) throws -> Payload {
        let arguments = try input.decode(as: BuiltinWire.GetFileArguments.self, path: ["arguments"])
        let offset = arguments.offset ?? 0
        let length = arguments.length ?? maximumReadLength
        guard offset >= 0 else {
            throw ProtocolError(.invalidArguments, "offset must be 0 or more, not \(offset)", path: ["arguments", "offset"])
        }
        guard (0...maximumReadLength).contains(length) else {
            throw ProtocolError(.invalidArguments, "length must be from 0 to \(maximumReadLength), not \(length)", path: ["arguments", "length"])
        }
        let fd = open(arguments.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("open", arguments.path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure("stat", arguments.path) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw failure("read", arguments.path, EISDIR) }
        let size = Int(info.st_size)
        let wanted = max(0, min(length, size - offset))
        var buffer = [UInt8](repeating: 0, count: wanted)
        var filled = 0
        while filled < wanted {
            let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + filled, wanted - filled, off_t(offset + filled)) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("read", arguments.path)
            }
            if count == 0 { break }
            filled += count
        }
        return try Payload(encoding: BuiltinWire.GetFileResult(
            data: Data(buffer[0..<filled]), size: size, eof: offset + filled >= size))
    }

    private static func makeParents(of path: String) throws(ProtocolError) {
        var components = path.split(separator: "/", omittingEmptySubsequences: false).dropLast()
        guard !components.isEmpty else { return }
        var current = path.hasPrefix("/") ? "" : "."
        if path.hasPrefix("/") { components = components.dropFirst() }
        for component in components where !component.isEmpty {
            current += "/" + component
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw failure("create the folder", current)
            }
        }
    }
}
