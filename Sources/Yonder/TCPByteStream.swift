#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif
import NIOCore
import NIOPosix
import Synchronization
import YonderProtocol

/// A TCP connection as a `ByteStream`, with Nagle's algorithm off (`TCP_NODELAY`) so small
/// requests leave at once. Used for an agent on this machine or a forwarded port.
public final class TCPByteStream: ByteStream {
    /// `host:port` of the peer, for messages.
    public let endpoint: String
    private let channel: any Channel
    private let inbox: TCPInbox

    private init(channel: any Channel, inbox: TCPInbox, endpoint: String) {
        self.channel = channel
        self.inbox = inbox
        self.endpoint = endpoint
    }

    /// Connects to `host:port`. Use a numeric address such as `127.0.0.1` to skip name
    /// resolution. Throws `YonderError` with code `.connectionFailed` when nothing answers.
    public static func connect(host: String, port: Int, timeout: Duration = .seconds(10)) async throws -> TCPByteStream {
        let inbox = TCPInbox()
        let endpoint = "\(host):\(port)"
        let milliseconds = max(1, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        do {
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connectTimeout(.milliseconds(milliseconds))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(TCPInboxHandler(inbox: inbox))
                    }
                }
                .connect(host: host, port: port)
                .get()
            inbox.attach(channel)
            return TCPByteStream(channel: channel, inbox: inbox, endpoint: endpoint)
        } catch {
            throw YonderError(
                .connectionFailed,
                "could not connect to \(endpoint): \(error); check that the agent is running and listening on that port")
        }
    }

    /// Waits for bytes from the peer; nil once it has closed and all were read.
    public func read(maxLength: Int) async throws -> [UInt8]? {
        try await inbox.read(maxLength: maxLength)
    }

    /// Queues `bytes` on the socket; waits only while the socket is backed up.
    public func write(_ bytes: [UInt8]) async throws {
        try await write(buffer: Self.buffer(.bytes(bytes), allocator: channel.allocator))
    }

    /// Writes `data` from where it is held: copied once, into the channel's buffer.
    public func write(_ data: Data) async throws {
        try await write(buffer: Self.buffer(.data(data), allocator: channel.allocator))
    }

    private func write(buffer: ByteBuffer) async throws {
        if channel.isWritable {
            // The socket keeps up: hand the bytes over without waiting for the event loop to
            // confirm, which would cost a thread hop per request. A failure shows as the read
            // side ending, which fails every pending call.
            channel.writeAndFlush(buffer, promise: nil)
        } else {
            // Over the high-water mark: wait, so a fast writer cannot buffer without bound.
            try await channel.writeAndFlush(buffer).get()
        }
    }

    /// Closes the socket; a pending `read` returns nil.
    public func close() async {
        try? await channel.close().get()
    }

    /// Bytes go to `receiver` from the channel's event loop as they are read.
    public func deliver(to receiver: @escaping @Sendable (ByteStreamEvent) -> Void) -> Bool {
        let inbox = inbox
        let channel = channel
        // On the event loop, so that nothing read meanwhile can pass what was buffered.
        channel.eventLoop.execute {
            if inbox.startDelivering(to: receiver) { channel.read() }
        }
        return true
    }

    /// Hands the bytes to the channel when the socket keeps up.
    public func writeWithoutWaiting(_ bytes: [UInt8]) -> Bool {
        guard channel.isWritable else { return false }
        channel.writeAndFlush(Self.buffer(.bytes(bytes), allocator: channel.allocator), promise: nil)
        return true
    }

    /// The channel's event loop: a task that prefers it runs between the loop's reads and
    /// writes, so its requests go out and its replies come in without a thread hop.
    public var executor: (any TaskExecutor)? { EventLoopTaskExecutor(channel.eventLoop) }

    /// True on the channel's event loop (for tests of ``executor``).
    package var isOnItsEventLoop: Bool { channel.eventLoop.inEventLoop }

    /// `piece` copied into a buffer of the channel's, a large one with huge pages advised.
    private static func buffer(_ piece: FramePiece, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: piece.count)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: piece.count) { LargeBuffer.copy([piece], into: $0) }
        return buffer
    }
}

/// Bytes received on a channel and not yet read, and the one reader waiting for them.
///
/// Filled on the event loop by `TCPInboxHandler`, drained by `read`. When more than
/// `highWater` bytes wait, the handler stops asking the socket for more (back-pressure) until
/// `read` drains them.
final class TCPInbox: Sendable {
    static let highWater = 4 << 20

    private struct State {
        var chunks: [ByteBuffer] = []
        var first = 0
        var count = 0
        var end: Result<Void, any Error>?
        var waiter: (continuation: UnsafeContinuation<[UInt8]?, any Error>, maxLength: Int)?
        var readHeldBack = false
        var channel: (any Channel)?
        /// Set by `startDelivering`: bytes go there as they come, and nothing is buffered.
        var receiver: (@Sendable (ByteStreamEvent) -> Void)?

        mutating func take(_ maxLength: Int) -> [UInt8] {
            var bytes: [UInt8] = []
            if first < chunks.count, chunks[first].readableBytes <= maxLength, first + 1 == chunks.count {
                bytes = chunks[first].readBytes(length: chunks[first].readableBytes) ?? []
            } else {
                bytes.reserveCapacity(min(maxLength, count))
                while first < chunks.count, bytes.count < maxLength {
                    let length = min(maxLength - bytes.count, chunks[first].readableBytes)
                    bytes.append(contentsOf: chunks[first].readBytes(length: length) ?? [])
                    if chunks[first].readableBytes == 0 { first += 1 }
                }
            }
            if first == chunks.count || chunks[first].readableBytes == 0 {
                chunks.removeAll(keepingCapacity: true)
                first = 0
            } else if first >= 64 {
                chunks.removeFirst(first)
                first = 0
            }
            count -= bytes.count
            return bytes
        }
    }

    private let state = Mutex(State())

    func attach(_ channel: any Channel) {
        state.withLock { $0.channel = channel }
    }

    /// Event loop: bytes arrived.
    func received(_ buffer: ByteBuffer) {
        if let receiver = state.withLock({ $0.receiver }) {
            receiver(.bytes(Array(buffer.readableBytesView)))
            return
        }
        let resume: (UnsafeContinuation<[UInt8]?, any Error>, [UInt8])? = state.withLock { state in
            state.chunks.append(buffer)
            state.count += buffer.readableBytes
            guard let waiter = state.waiter else { return nil }
            state.waiter = nil
            return (waiter.continuation, state.take(waiter.maxLength))
        }
        if let (continuation, bytes) = resume { continuation.resume(returning: bytes) }
    }

    /// Event loop: the stream ended, cleanly or with `error`.
    /// Called on the event loop: passes what is buffered (and the end, if it came) to
    /// `receiver`, and sends it everything from now on. True when reads were held back and
    /// should start again.
    func startDelivering(to receiver: @escaping @Sendable (ByteStreamEvent) -> Void) -> Bool {
        let (buffered, end, heldBack) = state.withLock { state in
            let buffered = state.count > 0 ? state.take(state.count) : []
            let heldBack = state.readHeldBack
            state.readHeldBack = false
            if state.end == nil { state.receiver = receiver }
            return (buffered, state.end, heldBack)
        }
        if !buffered.isEmpty { receiver(.bytes(buffered)) }
        switch end {
        case .success: receiver(.end)
        case .failure(let error): receiver(.failed(error))
        case nil: break
        }
        return heldBack
    }

    func ended(_ end: Result<Void, any Error>) {
        let receiver = state.withLock { state in
            defer { state.receiver = nil }
            if state.end == nil { state.end = end }
            return state.receiver
        }
        if let receiver {
            switch end {
            case .success: receiver(.end)
            case .failure(let error): receiver(.failed(error))
            }
            return
        }
        let waiter = state.withLock { state in
            if state.end == nil { state.end = end }
            defer { state.waiter = nil }
            return state.waiter?.continuation
        }
        switch end {
        case .success: waiter?.resume(returning: nil)
        case .failure(let error): waiter?.resume(throwing: error)
        }
    }

    /// Event loop: may the handler ask the socket for more? If not, remembers to ask later.
    func mayRead() -> Bool {
        state.withLock { state in
            if state.count >= Self.highWater {
                state.readHeldBack = true
                return false
            }
            return true
        }
    }

    func read(maxLength: Int) async throws -> [UInt8]? {
        try await withUnsafeThrowingContinuation { continuation in
            enum Outcome { case bytes([UInt8]), end(Result<Void, any Error>), wait }
            var resumeReading: (any Channel)?
            let outcome: Outcome = state.withLock { state in
                if state.count > 0 {
                    let bytes = state.take(maxLength)
                    if state.readHeldBack, state.count < Self.highWater {
                        state.readHeldBack = false
                        resumeReading = state.channel
                    }
                    return .bytes(bytes)
                }
                if let end = state.end { return .end(end) }
                state.waiter = (continuation, maxLength)
                return .wait
            }
            resumeReading?.read()
            switch outcome {
            case .bytes(let bytes): continuation.resume(returning: bytes)
            case .end(.success): continuation.resume(returning: nil)
            case .end(.failure(let error)): continuation.resume(throwing: error)
            case .wait: break
            }
        }
    }
}

/// Moves a channel's inbound bytes into a `TCPInbox`, and holds back socket reads while the
/// inbox is full.
private final class TCPInboxHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer

    private let inbox: TCPInbox

    init(inbox: TCPInbox) { self.inbox = inbox }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        inbox.received(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.ended(.success(()))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        inbox.ended(.failure(error))
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if inbox.mayRead() { context.read() }
    }
}

/// An event loop as a `TaskExecutor`: jobs run on the loop's thread, in order, between its I/O.
final class EventLoopTaskExecutor: TaskExecutor {
    let loop: any EventLoop

    init(_ loop: any EventLoop) { self.loop = loop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        loop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
