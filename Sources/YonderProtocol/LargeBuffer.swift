#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Dispatch

/// Buffers of many mebibytes (a large frame received, which may be an attachment and then the
/// `Data` the user gets; a piece of a file read to be sent; a large frame written), backed by
/// transparent huge pages where the system offers them, and used again while large frames
/// keep coming.
///
/// Fresh memory is dear: filling it costs a page fault every 4 KiB (for 64 MiB, 16,384 faults),
/// and the kernel zeroes every page before the first write. With `putFile` of 8 MiB pieces
/// the agent's event loop spent more time zeroing the pieces' fresh pages than reading the
/// bytes into them. So a buffer of `threshold` bytes or more comes from a pool: freed (when
/// the last `Data` holding it goes), it waits there to be used again by the next large
/// buffer, mapped and touched already; what waits unused for `keptFor` is unmapped, and at
/// most `limit` bytes wait at a time (``LargeBufferPool/shared``: 64 MiB, half a second).
/// New blocks ask for huge pages, which fault every 2 MiB instead: where the kernel gives
/// them only on request (`transparent_hugepage` set to `madvise`, Debian's default), this is
/// that request; where it gives them always or never, the advice changes nothing.
package enum LargeBuffer {
    /// From this size on, buffers ask for huge pages and come from the pool.
    package static let threshold = 4 << 20
    static let hugePage = 2 << 20

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

    /// `count` bytes, to be overwritten: zeros under `threshold`; from it on, a pooled block,
    /// whose bytes may be those of an earlier buffer.
    package static func data(count: Int) -> Data {
        LargeBufferPool.shared.data(capacity: count) { _ in count }
    }

    /// A buffer of at most `capacity` bytes that `fill` writes: it gets the memory and says
    /// how many bytes, from the start, it wrote, which the result holds.
    package static func data(capacity: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Int) rethrows -> Data {
        try LargeBufferPool.shared.data(capacity: capacity, fill: fill)
    }

    /// Up to `capacity` bytes of the file `fd`, read at `offset` (or from where it stands)
    /// into such a buffer: fewer only at the file's end. A read that fails throws what
    /// `failure` makes of its `errno`.
    package static func readFile(_ fd: Int32, upTo capacity: Int, at offset: Int? = nil, failure: (Int32) -> any Error) throws -> Data {
        try data(capacity: capacity) { buffer in
            var filled = 0
            while filled < capacity {
                let base = buffer.baseAddress! + filled
                let count = offset.map { pread(fd, base, capacity - filled, off_t($0 + filled)) } ?? read(fd, base, capacity - filled)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw failure(errno)
                }
                if count == 0 { break }
                filled += count
            }
            return filled
        }
    }
}

/// Blocks of memory for large buffers, kept a while after use for the next one
/// (``LargeBuffer``).
package final class LargeBufferPool: Sendable {
    /// The pool of every large buffer of this process.
    package static let shared = LargeBufferPool(limit: 64 << 20, keptFor: .milliseconds(500))

    private let blocks: ReusePool<Block>
    private let mappedCount = Mutex(0)

    /// A pool that keeps up to `limit` bytes, each block for `keptFor` after its last use.
    package init(limit: Int, keptFor: Duration) {
        blocks = ReusePool(limit: limit, keptFor: keptFor, size: \.capacity) { $0.unmap() }
    }

    /// The most bytes that wait for reuse at a time.
    package var limit: Int { blocks.limit }
    /// How long a block waits unused before it is unmapped.
    package var keptFor: Duration { blocks.keptFor }
    /// Bytes waiting for reuse.
    package var waitingBytes: Int { blocks.waitingBytes }
    /// Blocks mapped so far: a buffer that reused one mapped none.
    package var mapped: Int { mappedCount.withLock { $0 } }

    /// As ``LargeBuffer/data(capacity:fill:)``, from this pool.
    package func data(capacity: Int, fill: (UnsafeMutableRawBufferPointer) throws -> Int) rethrows -> Data {
        guard capacity >= LargeBuffer.threshold, let block = take(capacity) else {
            var data = Data(count: capacity)
            let count = try data.withUnsafeMutableBytes { try fill($0) }
            data.count = count
            return data
        }
        let count: Int
        do {
            count = try fill(UnsafeMutableRawBufferPointer(start: block.base, count: capacity))
        } catch {
            blocks.giveBack(block)
            throw error
        }
        precondition((0...capacity).contains(count), "a large buffer was filled with \(count) of \(capacity) bytes")
        return Data(bytesNoCopy: block.base, count: count, deallocator: .custom { [blocks] _, _ in blocks.giveBack(block) })
    }

    /// Memory mapped on its own, aligned to a huge page, with huge pages advised.
    private struct Block: @unchecked Sendable {
        // Unchecked: the pointer is only ever used by whoever holds the block, one at a time.
        let base: UnsafeMutableRawPointer
        let capacity: Int

        static func map(_ count: Int) -> Block? {
            let hugePage = LargeBuffer.hugePage
            let capacity = (count + hugePage - 1) / hugePage * hugePage
            #if os(Linux)
            // One huge page more than needed, then the unaligned ends given back.
            let length = capacity + hugePage
            guard let raw = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else {
                return nil
            }
            let address = UInt(bitPattern: raw)
            let start = (address + UInt(hugePage - 1)) & ~UInt(hugePage - 1)
            let head = Int(start - address), tail = length - head - capacity
            if head > 0 { munmap(raw, head) }
            let base = raw + head
            if tail > 0 { munmap(base + capacity, tail) }
            LargeBuffer.adviseHugePages(UnsafeMutableRawBufferPointer(start: base, count: capacity))
            return Block(base: base, capacity: capacity)
            #else
            return Block(base: .allocate(byteCount: capacity, alignment: hugePage), capacity: capacity)
            #endif
        }

        func unmap() {
            #if os(Linux)
            munmap(base, capacity)
            #else
            base.deallocate()
            #endif
        }
    }

    /// A waiting block that holds `count` bytes, else a new one.
    private func take(_ count: Int) -> Block? {
        if let reused = blocks.take(fitting: count) { return reused }
        let block = Block.map(count)
        if block != nil { mappedCount.withLock { $0 += 1 } }
        return block
    }
}

/// Large items of memory (blocks, buffers) that wait a while after use for the next one that
/// fits: at most `limit` bytes wait at a time, and what waits unused for `keptFor` is let go.
package final class ReusePool<Item: Sendable>: Sendable {
    /// The most bytes that wait for reuse at a time.
    package let limit: Int
    /// How long an item waits unused before it is let go.
    package let keptFor: Duration
    private let size: @Sendable (Item) -> Int
    private let letGo: @Sendable (Item) -> Void
    private let state: Mutex<State>

    private struct State {
        var waiting: [(item: Item, since: ContinuousClock.Instant)] = []
        var bytes = 0
        var trimScheduled = false
    }

    /// A pool that keeps up to `limit` bytes (each item's `size`), each item for `keptFor`
    /// after its last use; `letGo` frees an item that is not kept.
    package init(limit: Int, keptFor: Duration, size: @escaping @Sendable (Item) -> Int, letGo: @escaping @Sendable (Item) -> Void = { _ in }) {
        self.limit = limit
        self.keptFor = keptFor
        self.size = size
        self.letGo = letGo
        state = Mutex(State())
    }

    /// Bytes waiting for reuse.
    package var waitingBytes: Int { state.withLock { $0.bytes } }

    /// The smallest waiting item that holds `count` bytes without being much more than twice
    /// their size (a huge page's slack), or nil.
    package func take(fitting count: Int) -> Item? {
        let fits = count...(2 * count + LargeBuffer.hugePage)
        return state.withLock { state in
            let best = state.waiting.indices
                .filter { fits.contains(size(state.waiting[$0].item)) }
                .min { size(state.waiting[$0].item) < size(state.waiting[$1].item) }
            guard let best else { return nil }
            let item = state.waiting.remove(at: best).item
            state.bytes -= size(item)
            return item
        }
    }

    /// Lets `item` wait for the next use, or lets it go when `limit` bytes wait already.
    package func giveBack(_ item: Item) {
        let bytes = size(item)
        let (kept, schedule) = state.withLock { state -> (Bool, Bool) in
            guard state.bytes + bytes <= limit else { return (false, false) }
            state.waiting.append((item, .now))
            state.bytes += bytes
            defer { state.trimScheduled = true }
            return (true, !state.trimScheduled)
        }
        if !kept { letGo(item) }
        if schedule { scheduleTrim(after: keptFor) }
    }

    /// Trims after `delay`, on a Dispatch queue rather than a task: the trim must come even
    /// while every thread of the task pool is busy.
    private func scheduleTrim(after delay: Duration) {
        let (seconds, attoseconds) = delay.components
        let nanoseconds = max(0, Int(seconds) * 1_000_000_000 + Int(attoseconds / 1_000_000_000))
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) { [self] in trim() }
    }

    /// Lets go of the items that waited `keptFor` or longer; comes again when the next one
    /// will have, while some wait.
    private func trim() {
        let (expired, next) = state.withLock { state -> ([Item], Duration?) in
            let now = ContinuousClock.now
            var expired: [Item] = []
            state.waiting.removeAll { entry in
                guard now - entry.since >= keptFor else { return false }
                expired.append(entry.item)
                return true
            }
            state.bytes -= expired.reduce(0) { $0 + size($1) }
            let oldest = state.waiting.map(\.since).min()
            state.trimScheduled = oldest != nil
            return (expired, oldest.map { $0 + keptFor - now })
        }
        for item in expired { letGo(item) }
        if let next { scheduleTrim(after: next) }
    }
}
