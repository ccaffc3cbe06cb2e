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
import Crypto
import YonderProtocol

/// `yonder.putFile` and `yonder.getFile`: files in pieces, so no frame exceeds the limit.
enum Files {
    static let maximumReadLength = 8 * 1024 * 1024


    static func failure(_ action: String, _ path: String, _ code: Int32 = errno) -> ProtocolError {
        ProtocolError(.fileError, "cannot \(action) \(path): \(errorText(code))", path: ["arguments", "path"])
    }

    /// Writes at `offset` when given (so a client may send a file's pieces at once),
    /// else truncates or appends; answers with the size and where the write began.
    static func put(_ input: Payload) throws -> Payload {
        let arguments = try input.decode(as: BuiltinWire.PutFileArguments.self, path: ["arguments"])
        let append = arguments.append ?? false
        if let offset = arguments.offset {
            guard offset >= 0 else {
                throw ProtocolError(.invalidArguments, "offset must be 0 or more, not \(offset)", path: ["arguments", "offset"])
            }
            guard !append else {
                throw ProtocolError(.invalidArguments, "offset and append: true exclude each other: append writes at the end", path: ["arguments", "offset"])
            }
        }
        if arguments.createDirectories ?? true {
            try makeParents(of: arguments.path)
        }
        let flags = O_WRONLY | O_CREAT | O_CLOEXEC | (arguments.offset != nil ? 0 : append ? O_APPEND : O_TRUNC)
        let fd = open(arguments.path, flags, 0o644)
        guard fd >= 0 else { throw failure("open", arguments.path) }
        defer { close(fd) }
        var info = stat()
        var start = arguments.offset ?? 0
        if append {
            guard fstat(fd, &info) == 0 else { throw failure("stat", arguments.path) }
            start = Int(info.st_size)
        }
        try arguments.data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var done = 0
            while done < bytes.count {
                let written = arguments.offset == nil
                    ? write(fd, bytes.baseAddress! + done, bytes.count - done)
                    : pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(start + done))
                if written < 0 {
                    if errno == EINTR { continue }
                    throw failure("write", arguments.path)
                }
                done += written
            }
        }
        if let mode = arguments.mode, fchmod(fd, mode_t(mode & 0o7777)) != 0 {
            throw failure("set the mode of", arguments.path)
        }
        guard fstat(fd, &info) == 0 else { throw failure("stat", arguments.path) }
        return Payload(try JSONValue(encoding: BuiltinWire.PutFileResult(size: Int(info.st_size), offset: start)))
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
        // Read straight into the Data that goes out, without a copy in between; a large
        // piece reuses the memory of one sent before.
        let data = try LargeBuffer.readFile(fd, upTo: wanted, at: offset) { failure("read", arguments.path, $0) }
        return try Payload(encoding: BuiltinWire.GetFileResult(data: data, size: size, eof: offset + data.count >= size))
    }

    /// The most files `yonder.listFiles` lists.
    static let maximumListed = 100_000

    /// `yonder.listFiles`: the regular files under a folder (or the one file), each with its
    /// size, SHA-256 and executable bit; symbolic links are not followed.
    static func list(_ value: JSONValue) throws -> JSONValue {
        let arguments = try value.decode(as: BuiltinWire.ListFilesArguments.self, path: ["arguments"])
        var info = stat()
        guard lstat(arguments.path, &info) == 0 else {
            if errno == ENOENT { return try JSONValue(encoding: BuiltinWire.ListFilesResult(exists: false, files: [])) }
            throw failure("stat", arguments.path)
        }
        var files: [BuiltinWire.ListedFile] = []
        func add(_ path: String, relative: String, _ info: stat) throws {
            guard files.count < maximumListed else {
                throw ProtocolError(.invalidArguments, "\(arguments.path) holds more than \(maximumListed) files; list a smaller folder", path: ["arguments", "path"])
            }
            files.append(BuiltinWire.ListedFile(
                path: relative, size: Int(info.st_size), sha256: try hash(path), executable: info.st_mode & 0o111 != 0))
        }
        func walk(_ folder: String, relative: String) throws {
            guard let directory = opendir(folder) else { throw failure("open the folder", folder) }
            defer { closedir(directory) }
            var names: [String] = []
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { names.append(name) }
            }
            for name in names.sorted() {
                let path = "\(folder)/\(name)", inner = relative.isEmpty ? name : "\(relative)/\(name)"
                var info = stat()
                guard lstat(path, &info) == 0 else { continue }  // removed meanwhile
                switch info.st_mode & S_IFMT {
                case S_IFDIR: try walk(path, relative: inner)
                case S_IFREG: try add(path, relative: inner, info)
                default: continue
                }
            }
        }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: try walk(arguments.path, relative: "")
        case S_IFREG: try add(arguments.path, relative: "", info)
        default: break
        }
        files.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        return try JSONValue(encoding: BuiltinWire.ListFilesResult(exists: true, files: files))
    }

    static func hash(_ path: String) throws(ProtocolError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("open", path) }
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("read", path)
            }
            if count == 0 { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in hasher.finalize() {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
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
