#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// Buffers of many mebibytes (a large frame received, which may be an attachment and then the
/// `Data` the user gets; a large frame written), backed by transparent huge pages where the
/// system offers them.
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

    /// Copies `pieces` one after another into `buffer`, unwritten memory of at least their
    /// total size, advised as above; returns the number of bytes copied.
    package static func copy(_ pieces: [FramePiece], into buffer: UnsafeMutableRawBufferPointer) -> Int {
        adviseHugePages(buffer)
        var offset = 0
        for piece in pieces {
            piece.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[offset...]).copyMemory(from: $0) }
            offset += piece.count
        }
        return offset
    }

    /// `count` zero bytes, to be overwritten, in advised storage.
    package static func data(count: Int) -> Data {
        // Data(count:) takes zeroed memory that is not written yet (fresh pages read as zero).
        var data = Data(count: count)
        data.withUnsafeMutableBytes { adviseHugePages($0) }
        return data
    }
}
