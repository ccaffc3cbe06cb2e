#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import Logging
import YonderProtocol
import Synchronization

/// One open connection to a Yonder agent: many concurrent calls over one byte stream.
///
/// ```swift
/// let connection = try await Connection.connect(port: 7001, token: token)
/// let sum = try await connection.run(Add.self, [1, 2, 3])
/// let counter = try await connection.create(Counter.self, .init(start: 10), name: "c1")
/// _ = try await counter.increment(by: 5)
/// await connection.close()
/// ```
///
/// Calls are matched to replies by request id, so they run concurrently and finish in any
/// order. Cancelling the calling task cancels the call in the agent. If the stream drops,
/// every pending call fails at once with `YonderError.Code.connectionLost`. A connection
/// stays open until `close()` or until it is lost.
public final class Connection: Sendable {
    /// How a connection behaves. The defaults suit an agent on this machine or across SSH.
    public struct Configuration: Sendable {
        /// The client's name, sent in `hello`.
        public var clientName = "yonder-swift"
        /// The client's version, sent in `hello`.
        public var clientVersion = Connection.clientVersion
        /// The timeout of calls that pass none; nil waits as long as the call runs.
        public var defaultTimeout: Duration?
        /// How much longer than a call's timeout the client waits for the agent's own
        /// `timed_out` before giving up on its side.
        public var deadlineMargin: Duration = .seconds(1)
        /// How long a cancelled call waits for the agent to confirm before it throws anyway.
        public var cancellationGrace: Duration = .seconds(5)
        /// How long to wait for the agent's `hello`.
        public var handshakeTimeout: Duration = .seconds(10)
        /// A `ping` is sent after this much silence from the agent; nil turns keep-alive off.
        public var keepAliveInterval: Duration? = .seconds(15)
        /// The connection counts as lost when nothing arrives this long after a keep-alive ping.
        public var keepAliveTimeout: Duration = .seconds(10)
        /// The largest frame this client accepts, announced in `hello`.
        public var maximumFrameLength = Frame.defaultMaximumLength
        /// Where log lines of calls without their own handler go.
        public var logger = Logger(label: "yonder.remote")
        /// How many pieces (of 8 MiB at most) of one file `putFile` and `getFile` keep in
        /// flight at once, so that the tunnel carries the next while the agent writes or
        /// reads the one before; 1 sends them one after another. Each costs its size in
        /// memory on both sides.
        public var filePiecesInFlight = 4

        /// The defaults.
        public init() {}
    }

    /// This client's version.
    public static let clientVersion = "0.1.0"

    /// What the agent said about itself in the handshake.
    public let agent: AgentIdentity
    /// Where the agent is, for messages (e.g. `127.0.0.1:7001`).
    public let endpoint: String
    /// The settings this connection was opened with.
    public let configuration: Configuration

    let stream: any ByteStream
    let replies = Mutex(PendingReplies())
    private let outbox = Mutex(Outbox())
    private let lastInbound = Mutex(ContinuousClock.now)
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let names = Mutex<Set<String>>([])
    /// The largest frame payload the agent accepts.
    let outgoingLimit: Int

    private init(stream: any ByteStream, agent: AgentIdentity, endpoint: String, configuration: Configuration) {
        self.stream = stream
        self.agent = agent
        self.endpoint = endpoint
        self.configuration = configuration
        self.outgoingLimit = agent.maximumFrameLength
    }

    /// Connects over TCP to an agent listening on `host:port` (a loopback port, or the local
    /// end of a forwarded port) and authenticates with `token`.
    ///
    /// Throws `YonderError` with `.connectionFailed` when nothing listens there,
    /// `.unauthorized` when the agent refuses the token, `.unsupportedVersion` when it
    /// speaks another protocol.
    public static func connect(
        host: String = "127.0.0.1", port: Int, token: String, configuration: Configuration = Configuration()
    ) async throws -> Connection {
        let stream = try await TCPByteStream.connect(host: host, port: port, timeout: configuration.handshakeTimeout)
        return try await open(over: stream, token: token, endpoint: stream.endpoint, configuration: configuration)
    }

    /// Runs the protocol over an already open byte stream (such as an SSH tunnel channel):
    /// sends `hello` with `token`, waits for the agent's `hello`, then starts reading replies.
    /// On failure the stream is closed.
    public static func open(
        over stream: any ByteStream, token: String, endpoint: String = "the agent",
        configuration: Configuration = Configuration()
    ) async throws -> Connection {
        let handshake = ClientHandshake(stream: stream, endpoint: endpoint, configuration: configuration)
        let (agent, decoder): (AgentIdentity, MessageReader)
        do {
            (agent, decoder) = try await handshake.run(token: token)
        } catch {
            await stream.close()
            throw error
        }
        let connection = Connection(stream: stream, agent: agent, endpoint: endpoint, configuration: configuration)
        connection.start(decoder: decoder)
        return connection
    }

    private func start(decoder: MessageReader) {
        var started: [Task<Void, Never>] = []
        if !startReceiving(decoder) {
            started.append(Task { await self.readLoop(decoder) })
        }
        if let interval = configuration.keepAliveInterval {
            started.append(Task { await self.keepAlive(every: interval) })
        }
        tasks.withLock { $0 = started }
    }

    /// The names of the objects this connection created or looked up, sorted: what is lost
    /// with them when the agent restarts.
    public var objectNames: [String] { names.withLock { $0.sorted() } }

    func remember(objectNamed name: String?) {
        if let name { _ = names.withLock { $0.insert(name) } }
    }

    /// The thread this connection's replies arrive on, as a task executor, when its stream
    /// has one (a TCP connection's event loop). A loop of short calls run with
    /// `withTaskExecutorPreference(connection.executor) { … }` sends each request and is
    /// resumed by its reply on that thread, without the two thread hops a call otherwise
    /// pays. Only for short work between calls: while the task runs, the thread serves no
    /// other reply. Nil when the stream has no such thread; the preference is then no
    /// preference.
    public var executor: (any TaskExecutor)? { stream.executor }

    /// True once the connection was closed or lost; every new call then fails at once.
    public var isClosed: Bool { replies.withLock { $0.failure != nil } }

    /// Says `goodbye` to the agent and closes the stream. Calls still running fail with
    /// `.connectionLost`; objects stay alive in the agent. Safe to call twice.
    public func close() async {
        let error = YonderError(.connectionLost, "the connection to \(endpoint) was closed by this client while the call was running")
        if fail(error) {
            await send(Message.goodbye(.init(reason: "client closed the connection")).encodedFrame())
            await stream.close()
        }
        let running = tasks.withLock { tasks in
            defer { tasks = [] }
            return tasks
        }
        for task in running {
            task.cancel()
            await task.value
        }
    }

    // MARK: Requests

    /// Sends one request and waits for its reply: the path every call, create, invoke and
    /// built-in takes. `build` makes the message from the request id and the timeout in
    /// seconds.
    func request(
        _ operation: String, timeout: Duration?, events: RequestEvents? = nil,
        _ build: (_ id: Int, _ timeoutSeconds: Double?) -> Message
    ) async throws -> Payload {
        if Task.isCancelled {
            throw YonderError(.cancelled, "the calling task was cancelled before the request was sent", operation: operation)
        }
        let timeout = timeout ?? configuration.defaultTimeout
        let id = try replies.withLock { replies throws(YonderError) in try replies.register(operation: operation, events: events) }
        let message = build(id, timeout.map(Self.seconds))
        // The message's frame first, then its attachments' frames (each written from its own
        // array, never copied into a bigger one).
        let pieces = message.framePieces()
        let attachments = message.attachments
        let jsonLength = pieces[0].count - 4
        if jsonLength > outgoingLimit || attachments.contains(where: { $0.count > outgoingLimit }) {
            replies.withLock { $0.discard(id) }
            let size = jsonLength > outgoingLimit ? jsonLength : attachments.map(\.count).max() ?? 0
            throw YonderError(
                .frameTooLarge,
                "the request is \(size) bytes, over the agent's frame limit of \(outgoingLimit) bytes; send large data in pieces (putFile does)",
                operation: operation)
        }
        if let timeout { armDeadline(id, after: timeout, operation: operation) }
        await send(pieces: pieces)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                if let early = replies.withLock({ $0.suspend(id, continuation) }) {
                    continuation.resume(with: early)
                }
            }
        } onCancel: {
            self.cancel(id)
        }
    }

    /// Ends request `id`; false when it was already over.
    @discardableResult
    func complete(_ id: Int, _ result: Result<Payload, YonderError>) -> Bool {
        guard let (continuation, timer) = replies.withLock({ $0.complete(id, result) }) else { return false }
        timer?.cancel()
        continuation?.resume(with: result)
        return true
    }

    private func armDeadline(_ id: Int, after timeout: Duration, operation: String) {
        let margin = configuration.deadlineMargin
        let timer = Task {
            do { try await Task.sleep(for: timeout + margin) } catch { return }
            let error = YonderError(
                .timedOut,
                "no answer from the agent at \(endpoint) within the timeout of \(timeout) (plus \(margin) of margin); the agent may be overloaded or the connection stalled",
                operation: operation)
            if self.complete(id, .failure(error)) {
                await self.send(Message.cancel(.init(id: id)).encodedFrame())
            }
        }
        if !replies.withLock({ $0.setTimer(id, timer) }) { timer.cancel() }
    }

    /// The calling task was cancelled: tell the agent, and stop waiting for it after the
    /// grace period.
    private func cancel(_ id: Int) {
        guard replies.withLock({ $0.markCancelled(id) }) else { return }
        let grace = configuration.cancellationGrace
        Task {
            await self.send(Message.cancel(.init(id: id)).encodedFrame())
            do { try await Task.sleep(for: grace) } catch { return }
            let operation = self.replies.withLock { $0.operation(of: id) }
            self.complete(id, .failure(YonderError(
                .cancelled,
                "the call was cancelled; the agent at \(self.endpoint) did not confirm within \(grace)",
                operation: operation)))
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    // MARK: Writing

    /// Frames waiting to be written, and whether some task is writing them now.
    private struct Outbox {
        var frames: [FramePiece] = []
        var writing = false
    }

    /// Pieces from this size on are written on their own rather than joined with others.
    private static let largePiece = 256 << 10

    /// Queues `frame`. The first task to find the outbox idle writes it and whatever others
    /// queue meanwhile, in one write when several are waiting; the rest return at once.
    /// Frames are never interleaved, and an uncontended call pays no extra task hop.
    func send(_ frame: [UInt8]) async {
        await send(pieces: [.bytes(frame)])
    }

    /// Queues `pieces`, which together make whole frames, to be written in order with nothing
    /// between them; large pieces are written from where they are held, without a copy.
    func send(pieces: [FramePiece]) async {
        let becameWriter = outbox.withLock { outbox in
            outbox.frames.append(contentsOf: pieces)
            if outbox.writing { return false }
            outbox.writing = true
            return true
        }
        guard becameWriter else { return }
        while true {
            let waiting: [FramePiece]? = outbox.withLock { outbox in
                defer { outbox.frames.removeAll(keepingCapacity: true) }
                if outbox.frames.isEmpty {
                    outbox.writing = false
                    return nil
                }
                return outbox.frames
            }
            guard let waiting else { return }
            do {
                for batch in Self.batches(waiting) {
                    switch batch {
                    case .bytes(let bytes):
                        if !stream.writeWithoutWaiting(bytes) { try await stream.write(bytes) }
                    case .data(let data):
                        try await stream.write(data)
                    }
                }
            } catch {
                outbox.withLock {
                    $0.frames.removeAll()
                    $0.writing = false
                }
                lost("writing to it failed: \(error)")
                return
            }
        }
    }

    /// `pieces` as few writes: small ones joined, large ones alone.
    private static func batches(_ pieces: [FramePiece]) -> [FramePiece] {
        if pieces.count == 1 { return pieces }
        var batches: [FramePiece] = []
        var small: [UInt8] = []
        for piece in pieces {
            if piece.count >= largePiece {
                if !small.isEmpty {
                    batches.append(.bytes(small))
                    small = []
                }
                batches.append(piece)
            } else {
                piece.append(to: &small)
            }
        }
        if !small.isEmpty { batches.append(.bytes(small)) }
        return batches
    }

    // MARK: Reading

    /// When the stream delivers bytes by itself: decodes them and completes calls on the
    /// stream's own thread, so a reply resumes its caller with no task in between. Messages
    /// the handshake read ahead are handled first. See `Receiver`.
    private func startReceiving(_ initial: MessageReader) -> Bool {
        let receiver = Receiver(initial) { [weak self] event in
            guard let self else { return }
            switch event {
            case .message(let object, let attachments): handle(object, attachments: attachments)
            case .malformed(let error): malformed(error)
            case .ended: lost("it closed the connection")
            case .failed(let error): lost("reading from it failed: \(error)")
            }
        }
        receiver.start()
        return stream.deliver { [self] event in
            if case .bytes = event { lastInbound.withLock { $0 = .now } }
            receiver.receive(event)
        }
    }

    /// A framing error is fatal: tell the agent why, then close.
    private func malformed(_ error: ProtocolError) {
        Task {
            await send(Message.error(.init(id: nil, error: error)).encodedFrame())
            lost("it sent a malformed frame (\(error))", code: error.code)
        }
    }

    private func readLoop(_ initial: MessageReader) async {
        var decoder = initial
        do {
            while true {
                while let (object, attachments) = try decoder.next() {
                    handle(object, attachments: attachments)
                }
                guard let bytes = try await stream.read(maxLength: 4 << 20) else {
                    try decoder.finish()
                    lost("it closed the connection")
                    return
                }
                lastInbound.withLock { $0 = .now }
                decoder.append(bytes)
            }
        } catch let error as ProtocolError {
            // A framing error is fatal: tell the agent why, then close.
            await send(Message.error(.init(id: nil, error: error)).encodedFrame())
            lost("it sent a malformed frame (\(error))", code: error.code)
        } catch {
            lost("reading from it failed: \(error)")
        }
        await stream.close()
    }

    /// Dispatches one message (the reader has already thrown the fatal framing errors).
    private func handle(_ value: JSONValue, attachments: [Data]) {
        let message: Message
        do {
            message = try Message.decode(value).with(attachments: attachments)
        } catch {
            // A message this client cannot read is dropped; a call waiting for it times out
            // or is cancelled rather than the connection failing.
            configuration.logger.warning("yonder: ignoring a message from the agent at \(endpoint): \(error)")
            return
        }
        switch message {
        case .result(let reply):
            complete(reply.id, .success(Payload(reply.value, attachments: reply.attachments)))
        case .error(let failure):
            if let id = failure.id {
                let operation = replies.withLock { $0.operation(of: id) }
                complete(id, .failure(.remote(failure, operation: operation)))
            } else {
                lost("it reported a fatal error: \(failure.error.message)", code: failure.error.code)
            }
        case .log(let log):
            guard let (events, operation) = replies.withLock({ $0.events(for: log.id) }) else { return }
            let record = RemoteLogRecord(
                level: Logger.Level(rawValue: log.level) ?? .info, message: log.message,
                source: log.source, metadata: log.metadata ?? [:], operation: operation)
            if let onLog = events?.onLog { onLog(record) } else { record.forward(to: configuration.logger) }
        case .output(let output):
            replies.withLock { $0.events(for: output.id) }?.0?.onOutput?(output)
        case .ping(let ping):
            Task { await self.send(Message.pong(ping).encodedFrame()) }
        case .pong:
            break
        case .goodbye(let goodbye):
            lost("it said goodbye (\(goodbye.reason ?? "no reason given")); it is shutting down or dropped this client")
        case .hello, .auth, .call, .create, .lookup, .invoke, .release, .cancel:
            configuration.logger.warning("yonder: ignoring an unexpected \(message.type) message from the agent at \(endpoint)")
        }
    }

    // MARK: Failure

    /// Fails every pending call and refuses new ones. True for the first failure.
    @discardableResult
    private func fail(_ error: YonderError) -> Bool {
        guard let waiting = replies.withLock({ $0.failAll(error) }) else { return false }
        for (continuation, specific, timer) in waiting {
            timer?.cancel()
            continuation.resume(throwing: specific)
        }
        return true
    }

    /// The connection broke: fail everything pending with `connection_lost` (or `code`).
    private func lost(_ why: String, code: YonderError.Code = .connectionLost) {
        let error = YonderError(
            code,
            "lost the connection to \(agent.name) at \(endpoint): \(why). The call may or may not have run; reconnect and retry it if it is safe to repeat")
        if fail(error) {
            Task { await self.stream.close() }
        }
    }

    // MARK: Keep-alive

    private func keepAlive(every interval: Duration) async {
        var nonce = 0
        while true {
            do { try await Task.sleep(for: interval) } catch { return }
            if isClosed { return }
            let sentAt = ContinuousClock.now
            if sentAt - lastInbound.withLock({ $0 }) < interval { continue }
            nonce += 1
            await send(Message.ping(.init(nonce: nonce)).encodedFrame())
            do { try await Task.sleep(for: configuration.keepAliveTimeout) } catch { return }
            if lastInbound.withLock({ $0 }) < sentAt {
                lost("it did not answer a keep-alive ping within \(configuration.keepAliveTimeout)")
                return
            }
        }
    }
}
