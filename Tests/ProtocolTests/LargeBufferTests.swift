import Foundation
import Testing
@testable import YonderProtocol

@Suite struct LargeBufferTests {
    /// Bytes that differ from one offset to the next, so a shifted or short copy shows.
    static func pattern(_ count: Int) -> [UInt8] {
        // A tile of a prime length, repeated: quick to make even in a debug build.
        let tile = (0..<65_521).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var offset = 0
            while offset < count {
                let length = min(tile.count, count - offset)
                tile.withUnsafeBufferPointer { source in
                    UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[offset..<(offset + length)])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(source)[..<length]))
                }
                offset += length
            }
            initialized = count
        }
    }

    @Test(arguments: [16, LargeBuffer.threshold - 1, LargeBuffer.threshold, 9 << 20 + 5])
    func dataOfTheSizeAsked(count: Int) {
        var data = LargeBuffer.data(count: count)
        #expect(data.count == count)
        if count < LargeBuffer.threshold {
            #expect(data.allSatisfy { $0 == 0 })
        }
        let bytes = Self.pattern(count)
        data.withUnsafeMutableBytes { $0.copyBytes(from: bytes) }
        #expect(data == Data(bytes))
    }

    /// A large buffer freed goes back to the pool, and the next one of about its size gets
    /// the same memory, holding what is written into it; a smaller one, or one far smaller
    /// than any block waiting, gets memory of its own.
    @Test func aFreedLargeBufferIsUsedAgain() {
        let pool = LargeBufferPool(limit: 64 << 20, keptFor: .seconds(60))
        let count = 6 << 20 + 12_345
        func address(_ data: Data) -> UInt { data.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) } }
        var first: Data? = pool.data(capacity: count) { $0.copyBytes(from: Self.pattern(count)); return count }
        let firstAddress = address(first!)
        #expect(first! == Data(Self.pattern(count)))
        #expect(pool.mapped == 1 && pool.waitingBytes == 0)
        first = nil
        #expect(pool.waitingBytes == 8 << 20, "the block (6 MiB and a bit, in whole 2 MiB pages) waits")

        let reversed = Array(Self.pattern(count - 100).reversed())
        let second = pool.data(capacity: count) { $0.copyBytes(from: reversed); return reversed.count }
        #expect(address(second) == firstAddress)
        #expect(second.count == reversed.count && second == Data(reversed))
        #expect(pool.mapped == 1 && pool.waitingBytes == 0)
        // Too small for the block in use, and the pool has nothing else: a new block.
        let small = pool.data(capacity: LargeBuffer.threshold) { $0.count }
        #expect(pool.mapped == 2 && address(small) != firstAddress)
        // Under the threshold: plain zeroed memory, no block.
        let plain = pool.data(capacity: 1 << 20) { _ in 5 }
        #expect(plain == Data(count: 5) && pool.mapped == 2)
    }

    /// A block is not kept for a buffer of less than about half its size, so a small buffer
    /// does not hold a large block's memory.
    @Test func aSmallBufferDoesNotTakeALargeBlock() {
        let pool = LargeBufferPool(limit: 64 << 20, keptFor: .seconds(60))
        _ = pool.data(capacity: 32 << 20) { $0.count }
        #expect(pool.waitingBytes == 32 << 20)
        _ = pool.data(capacity: 4 << 20) { $0.count }
        #expect(pool.mapped == 2 && pool.waitingBytes == (32 << 20) + (4 << 20))
    }

    /// At most `limit` bytes wait; what waits unused for `keptFor` is unmapped; a fill that
    /// throws gives its block back.
    @Test func thePoolKeepsLittleAndNotForLong() async throws {
        let pool = LargeBufferPool(limit: 16 << 20, keptFor: .milliseconds(200))
        var held = (0..<3).map { _ in pool.data(capacity: 8 << 20) { $0.count } }
        #expect(pool.mapped == 3)
        held.removeAll()
        #expect(pool.waitingBytes == 16 << 20, "two blocks of 8 MiB wait, the third was unmapped")

        struct Refused: Error {}
        #expect(throws: Refused.self) { _ = try pool.data(capacity: 8 << 20) { _ in throw Refused() } }
        #expect(pool.waitingBytes == 16 << 20 && pool.mapped == 3)

        let deadline = ContinuousClock.now + .seconds(10)
        while pool.waitingBytes > 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(pool.waitingBytes == 0)
        _ = held
    }

    /// A file read into a buffer: at an offset or from where it stands, whole pieces but at
    /// its end, and a failing read thrown as the caller says.
    @Test func filesAreReadInWholePiecesButAtTheirEnd() throws {
        struct Failed: Error { let code: Int32 }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-read-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bytes = Self.pattern(LargeBuffer.threshold + 1000)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let failure: (Int32) -> any Error = { Failed(code: $0) }
        #expect(try LargeBuffer.readFile(fd, upTo: 600, at: 100, failure: failure) == Data(bytes[100..<700]))
        let first = try LargeBuffer.readFile(fd, upTo: LargeBuffer.threshold, failure: failure)
        #expect(first == Data(bytes[..<LargeBuffer.threshold]))
        #expect(try LargeBuffer.readFile(fd, upTo: LargeBuffer.threshold, failure: failure) == Data(bytes[LargeBuffer.threshold...]))
        #expect(try LargeBuffer.readFile(fd, upTo: 10, failure: failure).isEmpty)
        let error = #expect(throws: Failed.self) { _ = try LargeBuffer.readFile(-1, upTo: 10, failure: failure) }
        #expect(error?.code == EBADF)
    }

    @Test func piecesAreCopiedOneAfterAnother() {
        let pieces: [FramePiece] = [.bytes(Self.pattern(3)), .bytes([]), .data(Data(Self.pattern(5 << 20))), .data(Data([7]))]
        let total = pieces.reduce(0) { $0 + $1.count }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: total, alignment: 1)
        defer { buffer.deallocate() }
        #expect(LargeBuffer.copy(pieces, into: buffer) == total)
        var joined: [UInt8] = []
        for piece in pieces { piece.append(to: &joined) }
        #expect(Array(buffer) == joined)
    }

    /// A large frame's payload is received into storage with huge pages advised: after it is
    /// filled, the kernel reports huge pages in the mapping that holds it. Skipped where the
    /// kernel gives none (`transparent_hugepage` set to `never`), or on systems without it.
    @Test func largePayloadsLandInHugePages() throws {
        #if os(Linux)
        guard let mode = try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8),
            !mode.contains("[never]")
        else { return }
        let count = 32 << 20
        var frame: [UInt8] = [UInt8(count >> 24), UInt8(count >> 16 & 0xFF), UInt8(count >> 8 & 0xFF), UInt8(count & 0xFF)]
        frame += Self.pattern(count)
        var decoder = FrameDecoder()
        decoder.append(frame[..<4096])
        #expect(try decoder.next() == nil)
        decoder.append(frame[4096...])
        let payload = try #require(try decoder.next())
        #expect(Data(payload) == Data(frame[4...]))
        let address = payload.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        let hugeKiB = try Self.anonHugePagesKiB(overlapping: address..<(address + UInt(count)))
        #expect(hugeKiB >= 2048, "the mapping holding a 32 MiB payload has \(hugeKiB) KiB of huge pages")
        #endif
    }

    /// `AnonHugePages` of the mappings in /proc/self/smaps that overlap `range` (the advice
    /// splits a buffer's mapping in three: its unaligned ends and the aligned middle).
    static func anonHugePagesKiB(overlapping range: Range<UInt>) throws -> Int {
        // Read to the end: the file's size shows as 0, which a sized read would trust.
        let handle = try #require(FileHandle(forReadingAtPath: "/proc/self/smaps"))
        defer { try? handle.close() }
        let smaps = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        var inside = false
        var total = 0
        for line in smaps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let first = fields.first, first.contains("-"), !first.hasSuffix(":") {
                let bounds = first.split(separator: "-").compactMap { UInt($0, radix: 16) }
                inside = bounds.count == 2 && (bounds[0]..<bounds[1]).overlaps(range)
            } else if inside, fields.first == "AnonHugePages:", fields.count >= 2 {
                total += Int(fields[1]) ?? 0
            }
        }
        return total
    }
}
