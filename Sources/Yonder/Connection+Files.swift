import Foundation
import YonderProtocol

extension Connection {
    /// The most file data one `putFile`/`getFile` request carries: 8 MiB, less when the
    /// agent's frame limit is smaller (base64, for an agent without attachments, makes data a
    /// third larger on the wire).
    package var fileChunkLength: Int {
        min(8 << 20, max(1024, (outgoingLimit - 4096) / 4 * 3))
    }

    /// `Configuration.filePiecesInFlight`, at least 1.
    private var filePiecesInFlight: Int { max(1, configuration.filePiecesInFlight) }

    /// Writes `bytes` to the file `remotePath` in the agent, replacing it, in pieces that fit
    /// the frame limit. Missing folders are created. Returns the file's size.
    /// - Parameters:
    ///   - bytes: the file's new contents.
    ///   - remotePath: the file's path in the agent's file system.
    ///   - mode: permission bits such as `0o644`; nil keeps the agent's default.
    @discardableResult
    public func putFile(_ bytes: [UInt8], to remotePath: String, mode: Int? = nil) async throws -> Int {
        let length = fileChunkLength
        var offset: Int?
        return try await putPieces(to: remotePath, mode: mode) {
            let start = offset ?? 0
            guard start < bytes.count || offset == nil else { return nil }
            let end = min(bytes.count, start + length)
            offset = end
            return Data(bytes[start..<end])
        }
    }

    /// Copies the local file `localPath` to `remotePath` in the agent, reading and sending it
    /// piece by piece. Returns the remote file's size.
    @discardableResult
    public func putFile(from localPath: String, to remotePath: String, mode: Int? = nil) async throws -> Int {
        let operation = "putFile \(remotePath)"
        guard let handle = FileHandle(forReadingAtPath: localPath) else {
            throw YonderError(.fileError, "cannot open the local file \(localPath) for reading", operation: operation)
        }
        defer { try? handle.close() }
        let length = fileChunkLength
        var first = true
        var ended = false
        return try await putPieces(to: remotePath, mode: mode) {
            guard !ended else { return nil }
            // A whole piece, or less at the end; a large one reuses the memory of one sent before.
            let chunk = try LargeBuffer.readFile(handle.fileDescriptor, upTo: length) { code in
                YonderError(.fileError, "reading the local file \(localPath) failed: \(String(cString: strerror(code)))", operation: operation)
            }
            ended = chunk.count < length
            defer { first = false }
            return chunk.isEmpty && !first ? nil : chunk
        }
    }

    /// Sends the pieces `next` gives (nil after the last; the first may be empty) to
    /// `remotePath`: the first truncates the file; the rest are written at their offsets,
    /// up to `Configuration.filePiecesInFlight` at once, or appended one after another to an agent whose
    /// answer has no `offset` (one older than that argument). Returns the file's size.
    private func putPieces(to remotePath: String, mode: Int?, next: () throws -> Data?) async throws -> Int {
        guard let head = try next() else { return 0 }
        let first = try await putChunk(head, to: remotePath, append: false, offset: nil, mode: mode)
        var size = first.size
        var offset = head.count
        guard first.offset != nil else {
            while let piece = try next() {
                size = try await putChunk(piece, to: remotePath, append: true, offset: nil, mode: mode).size
            }
            return size
        }
        try await withThrowingTaskGroup(of: Int.self) { group in
            var running = 0
            while let piece = try next() {
                if running == filePiecesInFlight, let done = try await group.next() {
                    size = max(size, done)
                    running -= 1
                }
                let at = offset
                group.addTask { try await self.putChunk(piece, to: remotePath, append: false, offset: at, mode: mode).size }
                running += 1
                offset += piece.count
            }
            for try await done in group { size = max(size, done) }
        }
        return size
    }

    /// Has the agent replace its own executable with the file at `remotePath` (put there
    /// first, e.g. with `putFile`) and execute it in place (`yonder.swap`): it checks the
    /// file's SHA-256 (`sha256`, lowercase hex) and that it runs, then answers with the new
    /// agent's instance and says goodbye. The new agent listens on the same port with the
    /// same token; connect again to reach it.
    package func swapAgent(stagedAt remotePath: String, build: String, sha256: String) async throws -> String {
        let arguments = BuiltinWire.SwapArguments(path: remotePath, build: build, sha256: sha256)
        return try await builtIn("yonder.swap", BuiltinWire.SwapResult.self, input: arguments).instance
    }

    private func putChunk(_ data: Data, to remotePath: String, append: Bool, offset: Int?, mode: Int?) async throws -> BuiltinWire.PutFileResult {
        let arguments = BuiltinWire.PutFileArguments(path: remotePath, data: data, append: append ? true : nil, offset: offset, mode: mode)
        return try await builtIn("yonder.putFile", BuiltinWire.PutFileResult.self, input: arguments)
    }

    /// Reads the whole file `remotePath` from the agent, in pieces that fit the frame limit.
    public func getFile(_ remotePath: String) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        try await readChunks(of: remotePath) { chunk in bytes += chunk }
        return bytes
    }

    /// Copies the file `remotePath` in the agent to the local file `localPath` (replaced),
    /// piece by piece. Returns the number of bytes written.
    @discardableResult
    public func getFile(_ remotePath: String, to localPath: String) async throws -> Int {
        let operation = "getFile \(remotePath)"
        guard FileManager.default.createFile(atPath: localPath, contents: nil),
            let handle = FileHandle(forWritingAtPath: localPath)
        else {
            throw YonderError(.fileError, "cannot create the local file \(localPath)", operation: operation)
        }
        defer { try? handle.close() }
        var written = 0
        try await readChunks(of: remotePath) { chunk in
            do {
                try handle.write(contentsOf: chunk)
            } catch {
                throw YonderError(.fileError, "writing the local file \(localPath) failed: \(error)", operation: operation)
            }
            written += chunk.count
        }
        return written
    }

    /// The regular files under `remotePath` (or the one file) with their sizes and SHA-256
    /// (the `yonder.listFiles` built-in); nil when nothing is there.
    package func listFiles(_ remotePath: String) async throws -> [BuiltinWire.ListedFile]? {
        let result = try await builtIn("yonder.listFiles", BuiltinWire.ListFilesResult.self, input: BuiltinWire.ListFilesArguments(path: remotePath))
        return result.exists ? result.files : nil
    }

    /// Reads the file piece by piece, handing each to `body` in order: the first read says
    /// the file's size; the rest are asked for up to `Configuration.filePiecesInFlight` at once. Should the
    /// file change size meanwhile, the rest is read one piece after another until its end.
    private func readChunks(of remotePath: String, _ body: (Data) throws -> Void) async throws {
        let length = fileChunkLength
        var last = try await readChunk(of: remotePath, offset: 0, length: length)
        try body(last.data)
        var offset = last.data.count
        if !last.eof, !last.data.isEmpty, last.data.count == length {
            let size = last.size
            try await withThrowingTaskGroup(of: (Int, BuiltinWire.GetFileResult).self) { group in
                var asked = offset
                var inFlight = 0
                var arrived: [Int: BuiltinWire.GetFileResult] = [:]
                repeat {
                    while asked < size, inFlight < filePiecesInFlight {
                        let at = asked
                        group.addTask { (at, try await self.readChunk(of: remotePath, offset: at, length: length)) }
                        asked += length
                        inFlight += 1
                    }
                    guard let (at, piece) = try await group.next() else { return }
                    inFlight -= 1
                    arrived[at] = piece
                    while let piece = arrived.removeValue(forKey: offset) {
                        try body(piece.data)
                        offset += piece.data.count
                        last = piece
                        if piece.data.count < length || piece.size != size {
                            group.cancelAll()
                            return
                        }
                    }
                } while inFlight > 0
            }
        }
        while !last.eof, !last.data.isEmpty {
            last = try await readChunk(of: remotePath, offset: offset, length: length)
            try body(last.data)
            offset += last.data.count
        }
    }

    private func readChunk(of remotePath: String, offset: Int, length: Int) async throws -> BuiltinWire.GetFileResult {
        let arguments = BuiltinWire.GetFileArguments(path: remotePath, offset: offset, length: length)
        return try await builtIn("yonder.getFile", BuiltinWire.GetFileResult.self, input: arguments)
    }
}
