#if canImport(Glibc)
import Glibc
#endif
import Distributed
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NIOCore
import Synchronization
import YonderCore
import YonderProtocol

/// Why a running request was stopped before it finished.
final class StopReason: Sendable {
    private let code = Mutex<ProtocolError.Code?>(nil)

    /// Records the first reason; later ones are ignored.
    func set(_ reason: ProtocolError.Code) {
        code.withLock { if $0 == nil { $0 = reason } }
    }

    var value: ProtocolError.Code? { code.withLock { $0 } }

    /// The connection is gone: nothing more is sent for the request.
    static let disconnected = ProtocolError.Code("disconnected")
}

/// One client connection: frames in, handshake, requests run as concurrent tasks, replies out.
///
/// The handler's own state is touched only on its event loop; request tasks reach it through
/// `NIOLoopBound` and write through the channel, which keeps each task's writes in order.
final class AgentConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct Running {
        /// Stops the request: cancels its task, or asks its worker to cancel it.
        var cancel: @Sendable () -> Void
        var stop: StopReason
        var timer: Scheduled<Void>?
        /// Whether it counts as activity (all but `yonder.info`).
        var counted = true
    }

    private let agent: AgentState
    private var reader: MessageReader
    private var handshake: AgentHandshake
    private var running: [Int: Running] = [:]
    private var closing = false
    /// Answers written on the event loop and not yet flushed.
    private var unflushed = false
    /// The largest frame the client accepts, from its hello.
    private var clientMaximumFrame = Frame.defaultMaximumLength
    /// Whether the client accepts binary attachments, from its hello.
    private var clientAcceptsBinary = false

    /// Whether this connection counts among the agent's unauthenticated ones.
    private var counted = false
    private var handshakeTimer: Scheduled<Void>?

    init(agent: AgentState) {
        self.agent = agent
        // Until the handshake is done only a tiny frame is accepted: a peer without the token
        // cannot make the agent buffer more than that.
        // Attachments, too, only once authenticated.
        self.reader = MessageReader(
            maximumLength: min(agent.maximumFrameLength, agent.limits.handshakeFrameLimit), acceptsAttachments: false)
        self.handshake = AgentHandshake(token: agent.token)
    }

    func channelActive(context: ChannelHandlerContext) {
        let open = agent.unauthenticated.wrappingAdd(1, ordering: .relaxed).newValue
        counted = true
        let peer = context.remoteAddress.map { "\($0)" } ?? "a peer"
        if open > agent.limits.maximumUnauthenticated {
            Self.logger.notice("refused a connection from \(peer): \(open - 1) connections are already in the handshake (at most \(agent.limits.maximumUnauthenticated))")
            closing = true
            uncount()
            context.close(promise: nil)
            return
        }
        let timeout = agent.limits.handshakeTimeout
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        handshakeTimer = context.eventLoop.scheduleTask(in: .nanoseconds(timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)) {
            let (handler, context) = loopBound.value
            guard handler.handshake.state != .established, !handler.closing else { return }
            Self.logger.notice("refused a connection from \(peer): no handshake within \(timeout)")
            handler.fatal(ProtocolError(.timedOut, "the handshake (hello, then auth) must be done within \(timeout)"), context: context)
        }
        context.fireChannelActive()
    }

    /// The connection is no longer one of the unauthenticated ones.
    private func uncount() {
        if counted {
            counted = false
            agent.unauthenticated.subtract(1, ordering: .relaxed)
        }
    }

    // MARK: Backpressure
    //
    // A client that stops reading slows only itself: with `maximumInFlight` requests running,
    // or replies piling up past the channel's high water mark, the agent stops taking frames
    // out of its buffer and stops reading the socket; TCP (and the SSH channel's window) then
    // stop the client's writes. It reads again once requests finish and replies drain.

    /// Whether the agent stopped taking requests from this connection for now.
    private var paused: Bool { running.count >= agent.limits.maximumInFlight || !writable }
    private var writable = true
    /// NIO asked for a read while paused; it is done on resume.
    private var readPending = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.outbox = TaskReplies(channel: context.channel)
    }

    /// Where request tasks send their messages for the client.
    private var outbox: TaskReplies?

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        // Requests still running were stopped with the connection; they no longer count
        // as activity, whether or not their ends are reported.
        for request in running.values where request.counted { agent.activity.end() }
        running.removeAll()
    }

    func read(context: ChannelHandlerContext) {
        if paused {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        resume(context)
        context.fireChannelWritabilityChanged()
    }

    /// Takes the frames waiting in the buffer and reads again, unless still paused.
    private func resume(_ context: ChannelHandlerContext) {
        guard !closing, !paused else { return }
        processFrames(context: context)
        if readPending, !paused, !closing {
            readPending = false
            context.read()
        }
    }

    /// The client's side of the stream ended (a drop, or a half-close): the connection ends
    /// as a dropped one does (section 6), but when the stream ended inside a frame the agent
    /// first says `truncated_frame` (section 11).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case ChannelEvent.inputClosed = event else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard !closing else { return }
        do {
            // Whole frames not yet taken (while paused) go with the connection.
            while try reader.next() != nil {}
            try reader.finish()
            closing = true
            stopAll()
            context.close(promise: nil)
        } catch {
            stopAll()
            fatal(error, context: context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard !closing else { return }
        reader.append(buffer.readableBytesView)
        processFrames(context: context)
    }

    private func processFrames(context: ChannelHandlerContext) {
        // The answers given here (pings, errors) go out together, in one write to the socket,
        // when the frames read so far are done.
        defer { flushAnswers(context: context) }
        while !closing && !paused {
            let next: (object: JSONValue, attachments: [Data])?
            do {
                next = try reader.next()
            } catch {
                fatal(error, context: context)
                return
            }
            guard let (object, attachments) = next else { return }
            handle(object, attachments: attachments, context: context)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        uncount()
        handshakeTimer?.cancel()
        stopAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A peer that resets or leaves is ordinary (a killed client, a dropped tunnel): not
        // worth a warning each time.
        if let error = error as? IOError, [ECONNRESET, EPIPE, ETIMEDOUT].contains(error.errnoCode) {
            Self.logger.debug("closing a connection the peer dropped: \(error)")
        } else {
            Self.logger.warning("closing a connection after an error: \(error)")
        }
        context.close(promise: nil)
    }

    private static let logger = Logger(label: "yonder.agent.connection")

    private func stopAll() {
        for request in running.values {
            request.stop.set(StopReason.disconnected)
            request.cancel()
            request.timer?.cancel()
        }
    }

    private func handle(_ value: JSONValue, attachments: [Data], context: ChannelHandlerContext) {
        let message: Message
        let answer: Message.Hello?
        do {
            message = try Message.decode(value).with(attachments: attachments)
            answer = try handshake.receive(message)
        } catch {
            if handshake.state != .established {
                if error.code == .unauthorized {
                    let peer = context.remoteAddress.map { "\($0)" } ?? "a peer"
                    Self.logger.notice("refused a connection from \(peer): \(error.message)")
                }
                fatal(error, context: context)
            } else {
                write(.error(Message.Failure(id: Message.echoedRequestID(in: value), error: error)), context: context)
            }
            return
        }
        if handshake.state == .established && counted {
            // Authenticated: the full frame limit, and no more handshake deadline.
            uncount()
            handshakeTimer?.cancel()
            reader.frames.maximumLength = agent.maximumFrameLength
            reader.acceptsAttachments = true
        }
        if case .hello(let hello) = message, let answer {
            clientMaximumFrame = hello.maxFrame ?? Frame.defaultMaximumLength
            clientAcceptsBinary = hello.binary
            write(agent.hello(answering: answer), context: context)
            return
        }
        dispatch(message, context: context)
    }

    private func dispatch(_ message: Message, context: ChannelHandlerContext) {
        let agent = self.agent
        let objects = agent.objects
        switch message {
        case .call(let call) where call.function == Builtins.ping:
            // The no-op built-in is answered here, on the event loop: no task to start, no
            // thread to wake.
            guard isNew(call.id, context: context) else { return }
            let echo = Payload(call.arguments, attachments: call.attachments)
            write(RequestRunner.fitting(echo, within: clientMaximumFrame, binary: clientAcceptsBinary, id: call.id), context: context)
        case .call(let call):
            if let worker = agent.functionWorker(for: call.function) {
                forward(call.id, timeout: call.timeout, to: worker, label: call.function, context: context) { id in
                    .call(Message.Call(id: id, function: call.function, arguments: call.arguments, attachments: call.attachments))
                }
                return
            }
            start(call.id, timeout: call.timeout, function: call.function, context: context) {
                try await agent.call(call)
            }
        case .create(let create):
            start(create.id, timeout: nil, context: context) {
                Payload(try JSONValue(encoding: await agent.create(create)))
            }
        case .lookup(let lookup):
            start(lookup.id, timeout: nil, context: context) {
                Payload(try JSONValue(encoding: objects.lookup(name: lookup.name)))
            }
        case .invoke(let invoke):
            if let (worker, label) = agent.objectWorker(for: invoke) {
                forward(invoke.id, timeout: invoke.timeout, to: worker, label: label(), context: context) { id in
                    .invoke(Message.Invoke(id: id, object: invoke.object, method: invoke.method, arguments: invoke.arguments, attachments: invoke.attachments))
                }
                return
            }
            start(invoke.id, timeout: invoke.timeout, context: context) {
                try await agent.invoke(invoke)
            }
        case .release(let release):
            start(release.id, timeout: nil, context: context) {
                try await agent.release(release.object)
                return Payload(.null)
            }
        case .cancel(let cancel):
            if let request = running[cancel.id] {
                request.stop.set(.cancelled)
                request.cancel()
            }
        case .ping(let ping):
            write(.pong(ping), context: context)
        case .pong:
            break
        case .goodbye:
            closing = true
            stopAll()
            // Answers to the frames before it still go out; close drops what is not flushed.
            flushAnswers(context: context)
            context.close(promise: nil)
        case .hello, .auth, .result, .error, .log, .output:
            break  // answered or refused by the handshake state machine before dispatch
        }
    }

    private func start(_ id: Int, timeout: Double?, function: String? = nil, context: ChannelHandlerContext, work: @escaping @Sendable () async throws -> Payload) {
        guard isNew(id, context: context) else { return }
        let stop = StopReason()
        let channel = context.channel
        let eventLoop = context.eventLoop
        let clientMaximum = clientMaximumFrame
        let binary = clientAcceptsBinary
        let outbox = outbox ?? TaskReplies(channel: channel)
        let emit: @Sendable (Message) -> Void = { message in
            guard stop.value != StopReason.disconnected else { return }
            outbox.send(ByteBuffer(frames: message))
        }
        let holdBack: @Sendable () -> Void = {
            while !channel.isWritable, channel.isActive, stop.value == nil { usleep(2000) }
        }
        let handler = NIOLoopBound(self, eventLoop: eventLoop)
        let task = RequestRunner.launch(id: id, work: work, stop: stop, clientMaximum: clientMaximum, binary: binary, emit: emit, holdBack: holdBack) {
            eventLoop.execute {
                handler.value.finished(id)
            }
        }
        track(id, Running(cancel: { task.cancel() }, stop: stop, timer: timer(timeout, stop: stop, eventLoop: eventLoop) { task.cancel() }), function: function)
    }

    /// Whether no request `id` is running; if one is, answers `duplicate_id`.
    private func isNew(_ id: Int, context: ChannelHandlerContext) -> Bool {
        guard running[id] != nil else { return true }
        let error = ProtocolError(.duplicateID, "request \(id) is still running; use a new id for each request")
        write(.error(Message.Failure(id: id, error: error)), context: context)
        return false
    }

    /// Stops the request after `timeout` seconds (if given) with `timed_out`.
    private func timer(_ timeout: Double?, stop: StopReason, eventLoop: any EventLoop, cancel: @escaping @Sendable () -> Void) -> Scheduled<Void>? {
        guard let timeout else { return nil }
        let seconds = max(0, min(timeout, 1e9))
        return eventLoop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) {
            stop.set(.timedOut)
            cancel()
        }
    }

    /// Sends a request to the worker that runs its user code, with no task of its own: the
    /// worker's messages for it go to the client with the client's id, and its answer ends
    /// it here (all on this event loop, which the worker's link shares).
    private func forward(
        _ id: Int, timeout: Double?, to worker: Worker, label: @autoclosure @escaping @Sendable () -> String,
        context: ChannelHandlerContext, make: (Int) -> Message
    ) {
        guard isNew(id, context: context) else { return }
        let stop = StopReason()
        let channel = context.channel
        let eventLoop = context.eventLoop
        let clientMaximum = clientMaximumFrame
        let binary = clientAcceptsBinary
        let handler = NIOLoopBound(self, eventLoop: eventLoop)
        let outbox = outbox ?? TaskReplies(channel: channel)
        let workerID = worker.forward(label: label(), make) { message, final in
            guard final else {
                guard stop.value != StopReason.disconnected, let relabelled = message.withRequestID(id) else { return }
                outbox.send(ByteBuffer(frames: relabelled))
                return
            }
            let reply = RequestRunner.answer(message, id: id, stop: stop.value, clientMaximum: clientMaximum, binary: binary)
            let end: @Sendable () -> Void = {
                if stop.value != StopReason.disconnected {
                    outbox.send(ByteBuffer(frames: reply))
                }
                handler.value.finished(id)
            }
            if eventLoop.inEventLoop { end() } else { eventLoop.execute(end) }
        }
        let cancel: @Sendable () -> Void = { worker.cancel(workerID) }
        track(id, Running(cancel: cancel, stop: stop, timer: timer(timeout, stop: stop, eventLoop: eventLoop, cancel: cancel)))
    }

    private func finished(_ id: Int) {
        guard let request = running.removeValue(forKey: id) else { return }
        request.timer?.cancel()
        if request.counted { agent.activity.end() }
        if let context { resume(context) }
    }

    /// Records a request as running, and as activity unless it only looks (`yonder.info`).
    private func track(_ id: Int, _ request: Running, function: String? = nil) {
        var request = request
        request.counted = function != Builtins.info
        if request.counted { agent.activity.begin() }
        running[id] = request
    }

    /// Queues an answer given on the event loop; `processFrames` flushes it with the others.
    private func write(_ message: Message, context: ChannelHandlerContext) {
        let buffer = ByteBuffer(frames: message)
        context.write(wrapOutboundOut(buffer), promise: ReplyBuffers.promise(for: buffer, on: context.eventLoop))
        unflushed = true
    }

    private func flushAnswers(context: ChannelHandlerContext) {
        guard unflushed else { return }
        unflushed = false
        context.flush()
    }

    /// Sends an `error` without id, then closes: for bad frames and refused handshakes.
    private func fatal(_ error: ProtocolError, context: ChannelHandlerContext) {
        closing = true
        let channel = context.channel
        let frame = Message.error(Message.Failure(id: nil, error: error)).encodedFrame()
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: frame))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

/// Messages for the client from request tasks (which run off the event loop) and from workers.
/// The first one to arrive asks the loop to write it; those that arrive before the loop gets to
/// it join it, and all go out with one flush (one write to the socket) instead of one each.
final class TaskReplies: Sendable {
    private let channel: any Channel
    private let pending = Mutex<(buffers: [ByteBuffer], scheduled: Bool)>(([], false))

    init(channel: any Channel) {
        self.channel = channel
    }

    func send(_ buffer: ByteBuffer) {
        let schedule = pending.withLock { pending -> Bool in
            pending.buffers.append(buffer)
            defer { pending.scheduled = true }
            return !pending.scheduled
        }
        guard schedule else { return }
        channel.eventLoop.execute { [self] in
            let batch = pending.withLock { pending in
                pending.scheduled = false
                defer { pending.buffers.removeAll(keepingCapacity: true) }
                return pending.buffers
            }
            for buffer in batch { channel.write(buffer, promise: ReplyBuffers.promise(for: buffer, on: channel.eventLoop)) }
            channel.flush()
        }
    }
}

/// Runs one request as a task and turns its outcome into the reply.
enum RequestRunner {
    static func launch(
        id: Int, work: @escaping @Sendable () async throws -> Payload, stop: StopReason, clientMaximum: Int, binary: Bool,
        emit: @escaping @Sendable (Message) -> Void, holdBack: @escaping @Sendable () -> Void = {},
        finished: @escaping @Sendable () -> Void
    ) -> Task<Void, Never> {
        Task {
            let afterReply = AfterReply()
            let reply = await perform(
                id: id, work: work, stop: stop, clientMaximum: clientMaximum, binary: binary, emit: emit, holdBack: holdBack,
                afterReply: afterReply)
            emit(reply)
            finished()
            afterReply.run()
        }
    }

    static func perform(
        id: Int, work: @Sendable () async throws -> Payload, stop: StopReason, clientMaximum: Int, binary: Bool,
        emit: @escaping @Sendable (Message) -> Void, holdBack: @escaping @Sendable () -> Void = {},
        afterReply: AfterReply = AfterReply()
    ) async -> Message {
        do {
            let context = RequestContext(id: id, emit: emit, holdBack: holdBack, afterReply: afterReply)
            let value = try await RequestContext.$current.withValue(context) {
                try await work()
            }
            return fitting(value, within: clientMaximum, binary: binary, id: id)
        } catch {
            return .error(failure(error, id: id, stop: stop.value))
        }
    }

    /// The reply to a client for a worker's answer to its request `id`.
    static func answer(_ answer: Message, id: Int, stop: ProtocolError.Code?, clientMaximum: Int, binary: Bool) -> Message {
        switch answer {
        case .result(let reply):
            return fitting(Payload(reply.value, attachments: reply.attachments), within: clientMaximum, binary: binary, id: id)
        case .error(let failure):
            return .error(self.failure(ForwardedFailure(failure: failure), id: id, stop: stop))
        default:
            return .error(Message.Failure(id: id, error: ProtocolError(.internal, "the worker answered with \(answer.type)")))
        }
    }

    /// The result, or an `encode_failed` error when it is larger than the client accepts.
    /// Its attachments go as attachments to a client that accepts them (`binary`), else
    /// inline as base64.
    static func fitting(_ payload: Payload, within maximum: Int, binary: Bool, id: Int) -> Message {
        let reply: Message
        if binary || payload.attachments.isEmpty {
            reply = .result(Message.Reply(id: id, value: payload.value, attachments: payload.attachments))
        } else {
            reply = .result(Message.Reply(id: id, value: payload.inlined()))
        }
        let tooLarge = payload.approximateSize > maximum / 2
            && (reply.encodedPayload().count > maximum || reply.attachments.contains { $0.count > maximum })
        if tooLarge {
            let error = ProtocolError(.encodeFailed, "the result is larger than the client's maximum frame of \(maximum) bytes; return less, or fetch it in pieces")
            return .error(Message.Failure(id: id, error: error))
        }
        return reply
    }

    static func failure(_ error: any Error, id: Int, stop: ProtocolError.Code?) -> Message.Failure {
        if let stop, stop != StopReason.disconnected {
            let text = stop == .timedOut ? "the request did not finish within its timeout" : "the request was cancelled by the client"
            return Message.Failure(id: id, error: ProtocolError(stop, text))
        }
        switch error {
        case let error as ProtocolError:
            return Message.Failure(id: id, error: error)
        case let error as ForwardedFailure:
            var failure = error.failure
            failure.id = id
            return failure
        case let error as UserCodeError:
            return Message.Failure(
                id: id, error: ProtocolError(.remoteError, String(describing: error.underlying)),
                errorType: String(reflecting: type(of: error.underlying)))
        case is CancellationError:
            return Message.Failure(id: id, error: ProtocolError(.cancelled, "the request was cancelled"))
        default:
            return Message.Failure(
                id: id, error: ProtocolError(.remoteError, String(describing: error)),
                errorType: String(reflecting: type(of: error)))
        }
    }

}

extension ByteBuffer {
    /// `message`'s frame and then one frame per attachment, with each attachment's bytes
    /// copied once, straight into the buffer (a large one from ``ReplyBuffers``).
    init(frames message: Message) {
        let pieces = message.framePieces()
        let total = pieces.reduce(0) { $0 + $1.count }
        self = ReplyBuffers.buffer(capacity: total)
        writeWithUnsafeMutableBytes(minimumWritableBytes: total) { LargeBuffer.copy(pieces, into: $0) }
    }
}

/// Buffers of large frames to write (a file's piece for `getFile`, a large result), used again
/// once written, as ``LargeBufferPool`` does for the `Data` they are copied from: a new buffer
/// of 8 MiB costs 2,048 page faults, each page cleared by the kernel, which made up most of
/// the agent's time for `getFile`'s pieces. What waits unused for half a second is freed.
enum ReplyBuffers {
    static let pool = ReusePool<ByteBuffer>(limit: 64 << 20, keptFor: .milliseconds(500), size: { $0.capacity })

    /// A buffer of at least `capacity` bytes, empty; a large one that was written before.
    static func buffer(capacity: Int) -> ByteBuffer {
        guard capacity >= LargeBuffer.threshold, var buffer = pool.take(fitting: capacity) else {
            return ByteBufferAllocator().buffer(capacity: capacity)
        }
        // Its only holder now (the channel let go of it once written), so this keeps its memory.
        buffer.clear()
        return buffer
    }

    /// The promise to write `buffer` with: a large one goes back to the pool once written.
    static func promise(for buffer: ByteBuffer, on eventLoop: any EventLoop) -> EventLoopPromise<Void>? {
        guard buffer.capacity >= LargeBuffer.threshold else { return nil }
        let promise = eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenSuccess { pool.giveBack(buffer) }
        return promise
    }
}
