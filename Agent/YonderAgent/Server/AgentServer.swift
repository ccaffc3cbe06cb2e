#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import NIOCore
import NIOPosix
import Synchronization
public import YonderCore
import YonderProtocol

/// An agent listening on a loopback port: the server behind `yonder-agent serve`, also usable
/// in-process.
///
/// ```swift
/// let server = try await AgentServer.start(functions: [Add.self], objects: [Counter.self], token: token)
/// print(server.port)
/// ```
public final class AgentServer: Sendable {
    /// The port it listens on.
    public let port: Int
    /// The numeric address it listens on.
    public let host: String
    /// The build id it reports.
    public let build: String
    /// Names this start of the server; reported in `hello` as `instance`.
    public let instance: String
    /// When a user's request last ran (see `Activity`).
    let activity: Activity
    /// The jobs of `yonder.job.start`.
    let jobs: JobTable

    private let listener: any Channel
    /// The listening socket's descriptor, which `yonder.swap` hands to the agent's next build.
    let listenerDescriptor: Int32
    private let connections: OpenConnections
    /// Set when `stop()` begins; opened once it has said every goodbye.
    private let stopping = Atomic(false)
    private let stopped = Latch()

    private init(listener: any Channel, descriptor: Int32, host: String, port: Int, build: String, instance: String, activity: Activity, jobs: JobTable, connections: OpenConnections) {
        self.listenerDescriptor = descriptor
        self.activity = activity
        self.jobs = jobs
        self.listener = listener
        self.host = host
        self.port = port
        self.build = build
        self.instance = instance
        self.connections = connections
    }

    /// Starts listening on `host:port` (port 0 picks a free one) with the given functions and
    /// object types, plus the built-ins. `host` must be a numeric address: names are never
    /// resolved.
    public static func start(
        functions: [any RemoteFunction.Type],
        objects: [any RemoteObject.Type],
        token: String,
        host: String = "127.0.0.1",
        port: Int = 0,
        build: String = "dev"
    ) async throws -> AgentServer {
        let registry = try Registry(functions: functions, objects: objects)
        return try await start(registry: registry, token: token, host: host, port: port, build: build)
    }

    /// `isolated`: user code runs in worker processes started from this executable (what
    /// `yonder-agent serve` does), not in this process. `handover`: the listening socket and
    /// instance the agent's previous build gave this one (`yonder.swap`), in place of a new
    /// socket on `host:port`.
    static func start(
        registry: Registry, token: String, host: String, port: Int, build: String, limits: AgentLimits = AgentLimits(),
        isolated: Bool = false, jobsFolder: String? = nil, handover: Swap.Handover? = nil
    ) async throws -> AgentServer {
        guard !token.isEmpty else {
            throw AgentError("the token is empty; give the agent a token of at least 16 random characters")
        }
        let address: SocketAddress
        do {
            address = try SocketAddress(ipAddress: host, port: port)
        } catch {
            throw AgentError("--host must be a numeric IP address such as 127.0.0.1, not \"\(host)\"")
        }
        // With user code in workers the agent only routes frames: one event loop serves every
        // client and every worker's link, so a forwarded request and its answer never change
        // threads in the agent.
        let group: any EventLoopGroup = isolated ? Self.routingLoop : MultiThreadedEventLoopGroup.singleton
        let agent = try AgentState(
            registry: registry, token: token, build: build, maximumFrameLength: Frame.defaultMaximumLength, limits: limits,
            isolatedOn: isolated ? group.next() : nil, jobsFolder: jobsFolder, instance: handover?.instance)
        if !registry.functions.isEmpty { agent.workers?.warmUp() }
        let connections = OpenConnections()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Out of descriptors (EMFILE, ENFILE, ENOBUFS): stop accepting for a moment instead
            // of retrying accept in a busy loop; open connections are served all along.
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptPause())
                }
            }
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            // A client that closes its side still gets its answers (and truncated_frame).
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: limits.replyBufferLimit / 4, high: limits.replyBufferLimit))
            .childChannelInitializer { channel in
                let key = ObjectIdentifier(channel)
                connections.channels.withLock { $0[key] = channel }
                channel.closeFuture.whenComplete { _ in
                    _ = connections.channels.withLock { $0.removeValue(forKey: key) }
                    MemoryRelease.soon()
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AgentConnectionHandler(agent: agent))
                }
            }
        // The socket is made here rather than by the bootstrap, so that its descriptor is known
        // and can outlive this process's image (`yonder.swap`).
        let listener: any Channel
        let descriptor: Int32
        do {
            descriptor = try handover?.listener ?? Self.boundSocket(address)
            listener = try await bootstrap.withBoundSocket(descriptor).get()
        } catch {
            throw AgentError("cannot listen on \(host):\(port): \(error)")
        }
        let local = listener.localAddress
        return AgentServer(
            listener: listener, descriptor: descriptor, host: host, port: local?.port ?? port, build: build,
            instance: agent.instance, activity: agent.activity, jobs: agent.jobs, connections: connections)
    }

    /// A TCP socket bound to `address` (with SO_REUSEADDR, close-on-exec), not yet listening.
    private static func boundSocket(_ address: SocketAddress) throws -> Int32 {
        let family = address.protocol == .inet6 ? AF_INET6 : AF_INET
        #if canImport(Glibc)
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(family, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw AgentError("socket failed: \(errorText(errno))") }
        var on: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        let bound = address.withSockAddr { pointer, length in bind(fd, pointer, socklen_t(length)) }
        guard bound == 0 else {
            let reason = errorText(errno)
            close(fd)
            throw AgentError(reason)
        }
        return fd
    }

    /// The event loop of an agent whose user code runs in workers.
    private static let routingLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// Leaves new connections in the listening socket's backlog, unaccepted: before
    /// `yonder.swap` answers, so that a client connecting right after the answer waits for
    /// the next agent rather than reaching this one, which is about to say goodbye.
    func stopAccepting() async {
        try? await listener.setOption(.autoRead, value: false).get()
    }

    /// Stops accepting connections, then says goodbye to every connected client and closes
    /// them. (In this order: a client that reconnects on goodbye must not reach this agent
    /// again; after `yonder.swap` it reaches the next one, which takes over the socket.)
    public func stop() async {
        stopping.store(true, ordering: .sequentiallyConsistent)
        defer { stopped.open() }
        try? await listener.close()
        let open = connections.channels.withLock { Array($0.values) }
        let goodbye = Message.goodbye(Message.Goodbye(reason: "the agent is shutting down")).encodedFrame()
        for channel in open {
            try? await channel.writeAndFlush(ByteBuffer(bytes: goodbye)).get()
            try? await channel.close()
        }
    }

    /// Returns once the listener has closed and, when `stop()` closed it, once every client
    /// has been told goodbye (the listener closes first, so that a client reconnecting on
    /// goodbye does not reach this agent again; returning then would end the process before
    /// the goodbyes are written).
    public func waitUntilClosed() async {
        try? await listener.closeFuture.get()
        if stopping.load(ordering: .sequentiallyConsistent) { await stopped.wait() }
    }
}

/// The server's open connections, so that shutting down can say goodbye to each.
final class OpenConnections: Sendable {
    let channels = Mutex<[ObjectIdentifier: any Channel]>([:])
}

/// On the listening channel: when accept fails for want of descriptors or memory (EMFILE,
/// ENFILE, ENOBUFS, ENOMEM), stops accepting for a moment (autoRead off, so the event loop
/// stops watching the socket) rather than retrying in a busy loop, and says so once a pause.
final class AcceptPause: ChannelInboundHandler {
    typealias InboundIn = any Channel
    private var paused = false
    private static let logger = Logger(label: "yonder.agent.accept")

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let error = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errnoCode) else {
            context.fireErrorCaught(error)
            return
        }
        guard !paused else { return }
        paused = true
        Self.logger.warning("cannot accept connections (\(error)); pausing for a second")
        let channel = context.channel
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        channel.setOption(.autoRead, value: false).whenComplete { _ in
            channel.eventLoop.scheduleTask(in: .seconds(1)) {
                handler.value.paused = false
                channel.setOption(.autoRead, value: true).whenComplete { _ in channel.read() }
            }
        }
    }
}
