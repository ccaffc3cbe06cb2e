import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import YonderAgent
import YonderProtocol

/// The buffers of large replies: written through a real loopback connection, a large one goes
/// back to the pool and the next large reply is built in the same memory; a small one does not.
@Suite(.serialized) struct ReplyBuffersTests {
    /// Counts the bytes a connection receives.
    final class Counter: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let received = Mutex(0)
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let count = unwrapInboundIn(data).readableBytes
            received.withLock { $0 += count }
        }
    }

    static func reply(_ count: Int, id: Int) -> Message {
        .result(Message.Reply(id: id, value: .object(["data": .object(["$attachment": .integer(0)])]), attachments: [Data(repeating: UInt8(id), count: count)]))
    }

    static func address(_ buffer: ByteBuffer) -> UInt {
        buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
    }

    @Test func aLargeReplyBufferIsUsedAgainOnceWritten() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let counter = Counter()
        let server = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(counter) } }
            .bind(host: "127.0.0.1", port: 0).get()
        let client = try await ClientBootstrap(group: group).connect(to: server.localAddress!).get()

        let waiting = ReplyBuffers.pool.waitingBytes
        // The test lets go of the first buffer once it is handed to the channel, as the agent does.
        let (firstAddress, total, capacity, written) = try await {
            let first = ByteBuffer(frames: Self.reply(8 << 20, id: 1))
            let promise = try #require(ReplyBuffers.promise(for: first, on: client.eventLoop))
            client.writeAndFlush(first, promise: promise)
            return (Self.address(first), first.readableBytes, first.capacity, promise.futureResult)
        }()
        try await written.get()
        #expect(ReplyBuffers.pool.waitingBytes == waiting + capacity, "the written buffer waits for the next reply")

        var second = ByteBuffer(frames: Self.reply(8 << 20 - 100, id: 2))
        #expect(Self.address(second) == firstAddress, "the next large reply is built in the same memory")
        #expect(second.readableBytes == total - 100)
        #expect(second.getBytes(at: second.readableBytes - 1, length: 1) == [2], "and holds its own bytes")
        second.moveReaderIndex(forwardBy: second.readableBytes)

        // A small reply neither takes a large buffer nor is kept.
        let small = ByteBuffer(frames: Self.reply(1000, id: 3))
        #expect(ReplyBuffers.promise(for: small, on: client.eventLoop) == nil)

        let deadline = ContinuousClock.now + .seconds(10)
        while counter.received.withLock({ $0 }) < total, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(counter.received.withLock { $0 } == total, "the peer got the whole first reply")
        try await client.close()
        try await server.close()
        try await group.shutdownGracefully()
    }
}
