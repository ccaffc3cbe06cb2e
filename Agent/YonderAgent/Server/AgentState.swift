#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Distributed
import Synchronization
import YonderCore
import YonderProtocol

/// What every connection of one agent shares: the registry, the object table, and who the
/// agent is.
final class AgentState: Sendable {
    static let name = "yonder-agent"
    static let version = "0.1.0"

    let build: String
    let objects = ObjectTable()
    let token: String
    let maximumFrameLength: Int
    /// What a connection may cost before it has authenticated.
    let limits: AgentLimits
    /// Connections open now that have not completed the handshake.
    let unauthenticated = Atomic(0)
    private let started = ContinuousClock.now

    init(registry: Registry, token: String, build: String, maximumFrameLength: Int, limits: AgentLimits = AgentLimits()) throws(AgentError) {
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
        return .hello(hello)
    }

    /// Names this start of the agent process: random, so a restarted agent has another.
    let instance = String(HandshakeProof.newToken().prefix(16))

    /// Seconds since the agent started.
    var uptime: Double {
        let elapsed = (ContinuousClock.now - started).components
        let seconds = Double(elapsed.seconds)
        let fraction = Double(elapsed.attoseconds) / 1_000_000_000_000_000_000
        return seconds + fraction
    }

    func info() -> AgentInfo {
        AgentInfo(
            name: Self.name, version: Self.version, build: build, protocol: Message.protocolVersion,
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
    /// Bytes of replies waiting for a slow client beyond which the agent stops reading its
    /// requests (the channel's high water mark; it reads again below a quarter of it).
    public var replyBufferLimit = 1 << 20

    public init() {}
}
