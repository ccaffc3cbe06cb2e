#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
/// A reliable, ordered, two-way byte stream to an agent: a loopback TCP socket, or a tunnel
/// channel through SSH.
///
/// `Connection` runs the protocol over any conforming type, so the transport can change
/// without touching anything above it. `Connection` calls `read` from one task at a time and
/// `write` from one task at a time (it serializes its own writes); the two may run
/// concurrently with each other and with `close`.
///
/// Two optional requirements let a stream skip a thread hop on each message, which is most of
/// a short call's cost: ``deliver(to:)`` hands incoming bytes to `Connection` on the stream's
/// own thread as they arrive (instead of waking a task blocked in `read`), and
/// ``writeWithoutWaiting(_:)`` takes bytes without the caller waiting for the stream's thread.
/// A stream that has neither works the same, one hop slower each way.
public protocol ByteStream: Sendable {
    /// Waits for bytes and returns at most `maxLength` of them; returns nil once the peer has
    /// closed its side and every byte has been read.
    func read(maxLength: Int) async throws -> [UInt8]?

    /// Writes all of `bytes`, returning once the stream has taken them.
    func write(_ bytes: [UInt8]) async throws

    /// Closes both directions. A pending `read` returns nil or throws. Safe to call twice.
    func close() async

    /// From now on, passes incoming bytes to `receiver` as they arrive, in order, one call at
    /// a time, on the stream's own thread (so `receiver` must return quickly), ending with
    /// `.end` or `.failed`; `read` is then no longer called. Returns false, and does nothing,
    /// when the stream has no such mode.
    func deliver(to receiver: @escaping @Sendable (ByteStreamEvent) -> Void) -> Bool

    /// Takes `bytes` to be written after everything taken before, without waiting, when the
    /// stream has room for them now; returns false, having taken nothing, when it has not
    /// (the caller then awaits `write`). A failure to write shows as the incoming side
    /// failing.
    func writeWithoutWaiting(_ bytes: [UInt8]) -> Bool

    /// Writes all of `data` (a large attachment), returning once the stream has taken it.
    func write(_ data: Data) async throws

    /// The thread the stream delivers on, as an executor for tasks, if it can be one: a task
    /// that prefers it (`withTaskExecutorPreference`) writes and is resumed there, with no
    /// thread hop either way. Nil when the stream has no such thread.
    var executor: (any TaskExecutor)? { get }
}

/// What a stream in delivery mode passes on (see ``ByteStream/deliver(to:)``).
public enum ByteStreamEvent: Sendable {
    /// Bytes that arrived.
    case bytes([UInt8])
    /// The peer closed its side; every byte was delivered.
    case end
    /// The stream failed.
    case failed(any Error)
}

extension ByteStream {
    /// No delivery mode: `Connection` reads with `read`.
    public func deliver(to receiver: @escaping @Sendable (ByteStreamEvent) -> Void) -> Bool { false }

    /// Never takes bytes without waiting: `Connection` awaits `write`.
    public func writeWithoutWaiting(_ bytes: [UInt8]) -> Bool { false }

    /// No executor of its own.
    public var executor: (any TaskExecutor)? { nil }

    /// Copies `data` into an array and writes that.
    public func write(_ data: Data) async throws { try await write([UInt8](data)) }
}
