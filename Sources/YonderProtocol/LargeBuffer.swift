#if canImport(FoundationEssentials)
internal import FoundationEssentials
#else
internal import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Buffers of many mebibytes (a frame's payload, an attachment, a `Data` decoded from one),
/// backed by transparent huge pages where the system offers them.
///
/// Such a buffer is fresh memory each time (glibc maps allocations this large on their own
/// and unmaps them when freed), and filling it costs a page fault every 4 KiB: for 64 MiB,
/// 16,384 faults, more time than the copy itself. Advised huge pages fault every 2 MiB
/// instead. Where the kernel gives them only on request (`transparent_hugepage` set to
/// `madvise`, Debian's default), this is that request; where it gives them always or never,
/// the advice changes nothing.
package enum LargeBuffer {
    /// From this size on, buffers ask for huge pages.
    package static let threshold = 4 << 20

    private static let hugePage = 2 << 20

    /// Advises huge pages for the whole 2 MiB pages inside `buffer`, which must not have been
    /// written yet (pages already touched stay small). Buffers under `threshold` are left as
    /// they are.
    package static func adviseHugePages(_ buffer: UnsafeMutableRawBufferPointer) {
        #if os(Linux)
        guard buffer.count >= threshold, let base = buffer.baseAddress else { return }
        let mask = UInt(hugePage - 1)
        let start = (UInt(bitPattern: base) + mask) & ~mask
        let end = (UInt(bitPattern: base) + UInt(buffer.count)) & ~mask
        guard end > start, let first = UnsafeMutableRawPointer(bitPattern: start) else { return }
        // Only advice: when it is refused, the buffer works as well, with small pages.
        _ = madvise(first, Int(end - start), MADV_HUGEPAGE)
        #endif
    }

    /// An empty array with room for `capacity` bytes, its storage advised as above.
    package static func array(capacity: Int) -> [UInt8] {
        guard capacity >= threshold else {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(capacity)
            return bytes
        }
        return [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            adviseHugePages(UnsafeMutableRawBufferPointer(buffer))
            count = 0
        }
    }

    /// The bytes of `data` as an array, copied once into advised storage.
    static func array(copying data: Data) -> [UInt8] {
        guard data.count >= threshold else { return [UInt8](data) }
        return [UInt8](unsafeUninitializedCapacity: data.count) { buffer, count in
            adviseHugePages(UnsafeMutableRawBufferPointer(buffer))
            count = data.copyBytes(to: buffer)
        }
    }

    /// Copies `pieces` one after another into `buffer`, unwritten memory of at least their
    /// total size, advised as above; returns the number of bytes copied.
    package static func copy(_ pieces: [[UInt8]], into buffer: UnsafeMutableRawBufferPointer) -> Int {
        adviseHugePages(buffer)
        var offset = 0
        for piece in pieces {
            piece.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]).copyMemory(from: $0) }
            offset += piece.count
        }
        return offset
    }

    /// `bytes` as `Data`, copied once into advised storage.
    static func data(copying bytes: [UInt8]) -> Data {
        guard bytes.count >= threshold else { return Data(bytes) }
        // Data(count:) takes zeroed memory that is not written yet (fresh pages read as zero).
        var data = Data(count: bytes.count)
        data.withUnsafeMutableBytes { buffer in
            adviseHugePages(buffer)
            bytes.withUnsafeBytes { buffer.copyMemory(from: $0) }
        }
        return data
    }
}
