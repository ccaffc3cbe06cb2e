import Foundation
import YonderProtocol

extension Connection {
    /// The most file data one `putFile`/`getFile` request carries: 8 MiB, less when the
    /// agent's frame limit is smaller (base64, for an agent without attachments, makes data a
    /// third larger on the wire).
    var fileChunkLength: Int {
        min(8 << 20, max(1024, (outgoingLimit - 4096) / 4 * 3))
    }

    /// Writes `bytes` to the file `remotePath` in the agent, replacing it, in pieces that fit
    /// the frame limit. Missing folders are created. Returns the file's size.
    /// - Parameters:
    ///   - bytes: the file's new contents.
    ///   - remotePath: the file's path in the agent's file system.
    ///   - mode: permission bits such as `0o644`; nil keeps the agent's default.
    @discardableResult
    public func putFile(_ bytes: [UInt8], to remotePath: String, mode: Int? = nil) async throws -> Int {
        var offset = 0
        var size = 0
        repeat {
            let end = min(bytes.count, offset + fileChunkLength)
            size = try await putChunk(bytes[offset..<end], to: remotePath, append: offset > 0, mode: mode)
            offset = end
        } while offset < bytes.count
        return size
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
        var size = 0
        var first = true
        while true {
            let chunk: Data
            do {
                chunk = try handle.read(upToCount: fileChunkLength) ?? Data()
            } catch {
                throw YonderError(.fileError, "reading the local file \(localPath) failed: \(error)", operation: operation)
            }
            if chunk.isEmpty, !first { break }
            size = try await putChunk([UInt8](chunk)[...], to: remotePath, append: !first, mode: mode)
            first = false
            if chunk.count < fileChunkLength { break }
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

    private func putChunk(_ data: ArraySlice<UInt8>, to remotePath: String, append: Bool, mode: Int?) async throws -> Int {
        let arguments = BuiltinWire.PutFileArguments(path: remotePath, data: Data(data), append: append, mode: mode)
        return try await builtIn("yonder.putFile", BuiltinWire.PutFileResult.self, input: arguments).size
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

    private func readChunks(of remotePath: String, _ body: ([UInt8]) throws -> Void) async throws {
        var offset = 0
        while true {
            let arguments = BuiltinWire.GetFileArguments(path: remotePath, offset: offset, length: fileChunkLength)
            let chunk = try await builtIn("yonder.getFile", BuiltinWire.GetFileResult.self, input: arguments)
            let data = chunk.data
            try body([UInt8](data))
            offset += data.count
            if chunk.eof || data.isEmpty || offset >= chunk.size { return }
        }
    }
}
