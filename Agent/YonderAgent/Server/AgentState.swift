#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Distributed
import NIOCore
import Synchronization
import YonderCore
import YonderProtocol

/// What every connection of one agent shares: the registry, the object table, and who the
/// agent is.
final class AgentState: Sendable {
    static let name = "yonder-agent"
    static let version = "0.1.0"

    let build: String
    let objects: ObjectTable
    /// The worker processes that run user code, or nil to run it in this process.
    let workers: WorkerPool?
    let token: String
    let maximumFrameLength: Int
    /// What a connection may cost before it has authenticated.
    let limits: AgentLimits
    /// Connections open now that have not completed the handshake.
    let unauthenticated = Atomic(0)
    /// When a user's request last ran, for autostop.
    let activity: Activity
    /// The jobs started by `yonder.job.start`.
    let jobs: JobTable
    private let started = ContinuousClock.now

    /// `isolatedOn`: run user code in worker processes (the agent executable), not in this
    /// one, with their links on this event loop (the one that serves the clients).
    /// `firstObjectID`: in a worker hosting one object, the id the agent gave it.
    init(
        registry: Registry, token: String, build: String, maximumFrameLength: Int, limits: AgentLimits = AgentLimits(),
        isolatedOn eventLoop: (any EventLoop)? = nil, firstObjectID: String? = nil, jobsFolder: String? = nil,
        instance: String? = nil
    ) throws(AgentError) {
        self.instance = instance ?? Self.newInstance()
        let activity = Activity()
        self.activity = activity
        self.jobs = JobTable(folder: jobsFolder, activity: activity)
        let objects = ObjectTable(firstID: firstObjectID)
        self.objects = objects
        self.workers = eventLoop.map { WorkerPool(objects: objects, eventLoop: $0) }
        self.limits = limits
        self.build = build
        self.token = token
        self.maximumFrameLength = maximumFrameLength
        var withBuiltins = registry
        for entry in Builtins.entries {
            try withBuiltins.add(entry)
        }
        self.registryWithBuiltins = withBuiltins
    }

    /// The user's functions and object types plus the built-ins.
    private let registryWithBuiltins: Registry

    func function(_ name: String) throws(ProtocolError) -> FunctionEntry {
        guard let entry = registryWithBuiltins.functions[name] else {
            throw ProtocolError(.unknownFunction, "this agent has no function \"\(name)\"; it has \(registryWithBuiltins.functions.keys.sorted().joined(separator: ", ")). Is the agent built from the same source as the app?", path: ["function"])
        }
        return entry
    }

    // MARK: Requests: run here, or forwarded to the worker processes

    /// Runs a `call`: a built-in here, a user function in the functions' worker.
    func call(_ call: Message.Call) async throws -> Payload {
        let entry = try function(call.function)
        guard let workers, !Builtins.names.contains(call.function) else {
            return try await entry.run(Payload(call.arguments, attachments: call.attachments), self)
        }
        return try await workers.functions().request(label: call.function) { id in
            .call(Message.Call(id: id, function: call.function, arguments: call.arguments, attachments: call.attachments))
        }
    }

    /// The worker that runs the user function `name`, when calls of it are forwarded (not a
    /// built-in, not unknown, and the worker is up or can be started); else nil, and the
    /// call runs through `call(_:)`, which says what is wrong.
    func functionWorker(for name: String) -> Worker? {
        guard let workers, !Builtins.names.contains(name), (try? function(name)) != nil else { return nil }
        return try? workers.functions()
    }

    /// The worker of the object an `invoke` is for, and how to name the request; nil when
    /// the object lives here or is unknown (then `invoke(_:)` runs it, or says so).
    func objectWorker(for invoke: Message.Invoke) -> (Worker, @Sendable () -> String)? {
        guard workers != nil, let (reference, host) = try? objects.host(invoke.object), case .worker(let worker) = host else { return nil }
        return (worker, { Self.label(invoke, on: reference) })
    }

    /// How a crash report names an `invoke`: `Counter o3: increment(by:)`.
    private static func label(_ invoke: Message.Invoke, on reference: ObjectReference) -> String {
        "\(reference.objectType) \(invoke.object): \(MethodName.readable(invoke.method))"
    }

    /// Runs a `create`: the object lives here, or in a new worker of its own.
    func create(_ create: Message.Create) async throws -> ObjectReference {
        let type = try objectType(create.objectType)
        let objects = self.objects
        let limit = limits.maximumObjects
        return try await objects.create(typeName: type.name, name: create.name, reuse: create.reuse) {
            guard objects.count < limit else {
                throw ProtocolError(.unavailable, "this agent holds \(objects.count) objects, the most it keeps at once; release some (yonder objects NAME lists them), or start the agent with a higher --max-objects")
            }
            guard let workers else {
                let actor = try await type.create(Payload(create.arguments, attachments: create.attachments), objects.system)
                return ((actor.id as? RemoteObjectID)?.object ?? "\(actor.id)", .local)
            }
            let id = objects.newID()
            let worker = try workers.objectWorker(id: id, type: type.name)
            do {
                _ = try await worker.request(label: "\(type.name).init") { requestID in
                    .create(Message.Create(
                        id: requestID, objectType: type.name, arguments: create.arguments, attachments: create.attachments))
                }
            } catch {
                worker.stop()
                throw error
            }
            return (id, .worker(worker))
        }
    }

    /// Runs an `invoke` on the object, wherever it lives.
    func invoke(_ invoke: Message.Invoke) async throws -> Payload {
        let (reference, host) = try objects.host(invoke.object)
        switch host {
        case .local:
            let actor = try objects.actor(invoke.object)
            do {
                return try await objects.system.execute(
                    on: actor, method: invoke.method, arguments: invoke.arguments, attachments: invoke.attachments)
            } catch let error as ProtocolError {
                throw error
            } catch {
                throw UserCodeError(underlying: error)
            }
        case .worker(let worker):
            return try await worker.request(label: Self.label(invoke, on: reference)) { id in
                .invoke(Message.Invoke(
                    id: id, object: invoke.object, method: invoke.method, arguments: invoke.arguments,
                    attachments: invoke.attachments))
            }
        }
    }

    /// Runs a `release`: the object's worker, if it has one, ends with it.
    func release(_ object: String) async throws {
        guard case .worker(let worker) = try objects.release(object) else { return }
        _ = try? await worker.request(label: "release of \(object)") { id in
            .release(Message.Release(id: id, object: object))
        }
        worker.stop()
    }

    func objectType(_ name: String) throws(ProtocolError) -> ObjectTypeEntry {
        guard let entry = registryWithBuiltins.objectTypes[name] else {
            let known = registryWithBuiltins.objectTypes.keys.sorted()
            throw ProtocolError(.unknownObjectType, "this agent has no object type \"\(name)\"; it has \(known.isEmpty ? "none" : known.joined(separator: ", "))", path: ["objectType"])
        }
        return entry
    }

    /// The agent's `hello`, with the nonce and proof of `answer` (from the handshake).
    func hello(answering answer: Message.Hello) -> Message {
        var hello = answer
        hello.name = Self.name
        hello.version = Self.version
        hello.build = build
        hello.instance = instance
        hello.maxFrame = maximumFrameLength
        hello.binary = true
        return .hello(hello)
    }

    /// Names this start of the agent process: random, so a restarted agent has another (an
    /// agent swapped in place is given its own by the one before, `yonder.swap`).
    let instance: String

    static func newInstance() -> String { String(HandshakeProof.newToken().prefix(16)) }

    /// Seconds since the agent started.
    var uptime: Double {
        let elapsed = (ContinuousClock.now - started).components
        let seconds = Double(elapsed.seconds)
        let fraction = Double(elapsed.attoseconds) / 1_000_000_000_000_000_000
        return seconds + fraction
    }

    func info() -> AgentInfo {
        AgentInfo(
            name: Self.name, version: Self.version, build: build, protocolVersion: Message.protocolVersion,
            pid: Int(getpid()), hostname: Builtins.hostname, os: Builtins.operatingSystem,
            uptime: uptime,
            functions: registryWithBuiltins.functions.keys.sorted(),
            objectTypes: registryWithBuiltins.objectTypes.keys.sorted(),
            objects: objects.references)
    }
}

/// Bounds on what a connection may cost (PROTOCOL.md section 12): before it authenticates,
/// almost nothing for a few seconds; after, a bounded number of requests and replies.
public struct AgentLimits: Sendable {
    /// How long a connection has to complete the handshake (hello and auth).
    public var handshakeTimeout: Duration = .seconds(5)
    /// The largest frame accepted before the handshake is done (a hello or an auth is tiny).
    public var handshakeFrameLimit = 4096
    /// How many connections may be in the handshake at once; more are closed at once.
    public var maximumUnauthenticated = 64
    /// How many requests of one connection may run at once; beyond it the agent stops
    /// reading that connection until some finish.
    public var maximumInFlight = 1024
    /// How many remote objects may live at once; a `create` beyond is `unavailable`. With
    /// user code in workers, each object is a process.
    public var maximumObjects = 256
    /// Bytes of replies waiting for a slow client beyond which the agent stops reading its
    /// requests (the channel's high water mark; it reads again below a quarter of it).
    public var replyBufferLimit = 1 << 20

    /// The defaults (PROTOCOL.md section 12).
    public init() {}
}
