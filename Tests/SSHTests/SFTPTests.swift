import Foundation
import Testing
import TestSupport
import YonderSSH

@Suite(.serialized, .enabled(if: SSHServerFixture.shouldRun))
struct SFTPTests {
    let server: SSHServerFixture
    init() throws { server = try SSHServerFixture() }

    private func localFile(_ name: String) -> String { server.folder.appendingPathComponent(name).path }

    private let block = patternBytes(count: 1 << 20, seed: 9)

    /// Writes `mebibytes` copies of the pattern block to a local file.
    private func makeFile(_ path: String, mebibytes: Int) throws {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let data = Data(block)
        for _ in 0..<mebibytes { try handle.write(contentsOf: data) }
    }

    private func verify(_ path: String) throws -> PatternVerifier {
        let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var verifier = PatternVerifier(block: block)
        while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty { verifier.add([UInt8](data)) }
        return verifier
    }

    @Test func twoHundredMebibyteRoundTrip() async throws {
        let source = localFile("big.bin")
        try makeFile(source, mebibytes: 200)
        let session = try await connect(server)
        let sftp = try await session.sftp()
        let remote = server.folder.appendingPathComponent("remote/deep/big.bin").path
        try await sftp.makeDirectory(server.folder.appendingPathComponent("remote/deep").path)
        let reports = ProgressLog()
        try await sftp.upload(from: source, to: remote, mode: 0o640) { sent, total in reports.add(sent, total) }
        #expect(reports.last?.0 == Int64(200 << 20))
        #expect(reports.last?.1 == Int64(200 << 20))
        #expect(reports.count > 2)
        let attributes = try #require(try await sftp.attributes(remote))
        #expect(attributes.size == UInt64(200 << 20))
        #expect(attributes.permissions == 0o640)
        #expect(!attributes.isDirectory)
        // No temporary file is left beside it.
        let siblings = try FileManager.default.contentsOfDirectory(atPath: server.folder.appendingPathComponent("remote/deep").path)
        #expect(siblings == ["big.bin"])

        let back = localFile("back.bin")
        try await sftp.download(from: remote, to: back)
        let received = try verify(back)
        #expect(received.count == 200 << 20)
        #expect(received.mismatchAt == nil)
        // A corrupted byte would be caught.
        var corrupted = PatternVerifier(block: block)
        var bad = block
        bad[1234] ^= 1
        corrupted.add(bad)
        #expect(corrupted.mismatchAt == 1234)
        await sftp.close()
        await session.close()
    }

    /// A transfer whose task is cancelled stops at its next piece, not at its end: it throws
    /// `cancelled`, leaves no partial file on either side, and the SFTP session still works.
    @Test func cancelledTransfersStopAndLeaveNoPartialFile() async throws {
        let source = localFile("cancel.bin")
        try makeFile(source, mebibytes: 400)
        let session = try await connect(server)
        let sftp = try await session.sftp()
        let folder = server.folder.appendingPathComponent("cancel")
        try await sftp.makeDirectory(folder.path)
        let remote = folder.appendingPathComponent("cancel.bin").path

        let upload = Task { try await sftp.upload(from: source, to: remote) { sent, _ in if sent >= 8 << 20 { withUnsafeCurrentTask { $0?.cancel() } } } }
        let uploadError = await #expect(throws: SSHError.self) { try await upload.value }
        #expect(uploadError?.code == .cancelled, "\(String(describing: uploadError))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)

        try await sftp.upload(from: source, to: remote)
        let back = localFile("cancel-back.bin")
        let download = Task { try await sftp.download(from: remote, to: back) { received, _ in if received >= 8 << 20 { withUnsafeCurrentTask { $0?.cancel() } } } }
        let downloadError = await #expect(throws: SSHError.self) { try await download.value }
        #expect(downloadError?.code == .cancelled, "\(String(describing: downloadError))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: server.folder.path).filter { $0.contains("cancel-back") }.isEmpty)

        // The session goes on.
        try await sftp.download(from: remote, to: back)
        #expect(try verify(back).count == 400 << 20)
        await sftp.close()
        await session.close()
    }

    @Test func uploadReplacesAnExistingFileAndRemoveDeletesIt() async throws {
        let session = try await connect(server)
        let sftp = try await session.sftp()
        let remote = server.folder.appendingPathComponent("replace.txt").path
        for text in ["first version", "second"] {
            let source = localFile("source.txt")
            try text.write(toFile: source, atomically: true, encoding: .utf8)
            try await sftp.upload(from: source, to: remote, mode: 0o755)
            #expect(try String(contentsOfFile: remote, encoding: .utf8) == text)
        }
        #expect(try await sftp.attributes(remote)?.permissions == 0o755)
        try await sftp.remove(remote)
        #expect(try await sftp.attributes(remote) == nil)
        try await sftp.remove(remote)  // removing a missing file is fine
        await session.close()
    }

    @Test func makeDirectoryIsIdempotentAndRefusesAFileInTheWay() async throws {
        let session = try await connect(server)
        let sftp = try await session.sftp()
        let folder = server.folder.appendingPathComponent("a/b/c").path
        try await sftp.makeDirectory(folder)
        try await sftp.makeDirectory(folder)
        #expect(try await sftp.attributes(folder)?.isDirectory == true)
        let file = server.folder.appendingPathComponent("plain").path
        try "x".write(toFile: file, atomically: true, encoding: .utf8)
        let error = await #expect(throws: SSHError.self) { try await sftp.makeDirectory(file + "/below") }
        #expect(error?.code == .sftpFailed)
        await session.close()
    }

    @Test func errorsNameThePathAndLeaveNothingBehind() async throws {
        let session = try await connect(server)
        let sftp = try await session.sftp()
        let missing = server.folder.appendingPathComponent("nope.bin").path
        let download = await #expect(throws: SSHError.self) { try await sftp.download(from: missing, to: localFile("nope.local")) }
        #expect(download?.code == .sftpFailed)
        #expect(download?.description.contains(missing) == true)
        #expect(!FileManager.default.fileExists(atPath: localFile("nope.local")))

        let source = localFile("small.txt")
        try "hello".write(toFile: source, atomically: true, encoding: .utf8)
        let intoNothing = server.folder.appendingPathComponent("no/such/folder/file").path
        let upload = await #expect(throws: SSHError.self) { try await sftp.upload(from: source, to: intoNothing) }
        #expect(upload?.sftpStatus != nil)

        let noLocal = await #expect(throws: SSHError.self) { try await sftp.upload(from: localFile("absent"), to: missing) }
        #expect(noLocal?.code == .localFile)
        await session.close()
    }
}

/// Progress reports, collected from any thread.
final class ProgressLog: @unchecked Sendable {
    // Safe: behind `lock`.
    private let lock = NSLock()
    private var reports: [(Int64, Int64)] = []
    func add(_ done: Int64, _ total: Int64) { lock.withLock { reports.append((done, total)) } }
    var count: Int { lock.withLock { reports.count } }
    var last: (Int64, Int64)? { lock.withLock { reports.last } }
}
