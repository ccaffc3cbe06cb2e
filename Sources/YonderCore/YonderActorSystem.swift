#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif
public import Distributed
package import YonderProtocol
import Synchronization

/// The distributed actor system of Yonder: remote objects are distributed actors of this
/// system.
///
/// It runs in one of two roles:
/// - in the app (`init(transport:)`), every actor is remote: `distributed func` calls are
///   encoded as JSON and sent over the connection;
/// - in the agent (`init()`), actors are hosted: the agent creates them, keeps them in its
///   table, and executes incoming invocations on them.
public final class YonderActorSystem: DistributedActorSystem, Sendable {
    public typealias ActorID = RemoteObjectID
    public typealias InvocationEncoder = YonderInvocationEncoder
    public typealias InvocationDecoder = YonderInvocationDecoder
    public typealias ResultHandler = YonderResultHandler
    public typealias SerializationRequirement = Codable

    private struct State {
        var hosted: [RemoteObjectID: any DistributedActor] = [:]
        var nextID = 1
    }

    /// The id of the first actor this system hosts; later ones are `first.2`, `first.3`…
    /// When nil they are `o1`, `o2`…
    private let firstID: String?

    private let transport: (any RemoteInvocationTransport)?
    private let state = Mutex(State())

    /// A client-side system whose actors are all remote, reached through `transport`.
    package init(transport: any RemoteInvocationTransport) {
        self.transport = transport
        self.firstID = nil
    }

    /// A hosting system, as the agent runs it: actors created here live here.
    package init() {
        self.transport = nil
        self.firstID = nil
    }

    /// A hosting system whose first actor gets the id `firstID`: what a process of the agent
    /// that hosts one object runs, so that the id the agent gave the object is its own.
    package init(firstID: String) {
        self.transport = nil
        self.firstID = firstID
    }

    /// True for the agent's hosting system.
    package var isHosting: Bool { transport == nil }

    public func resolve<Act>(id: ActorID, as actorType: Act.Type) throws -> Act?
    where Act: DistributedActor, Act.ID == ActorID {
        guard isHosting else { return nil }
        return state.withLock { $0.hosted[id] } as? Act
    }

    public func assignID<Act>(_ actorType: Act.Type) -> ActorID
    where Act: DistributedActor, Act.ID == ActorID {
        state.withLock { state in
            defer { state.nextID += 1 }
            guard let firstID else { return RemoteObjectID("o\(state.nextID)") }
            return RemoteObjectID(state.nextID == 1 ? firstID : "\(firstID).\(state.nextID)")
        }
    }

    public func actorReady<Act>(_ actor: Act) where Act: DistributedActor, Act.ID == ActorID {
        // Only hosted actors are kept; a client-side proxy is never "ready" here.
        guard isHosting else { return }
        state.withLock { $0.hosted[actor.id] = actor }
    }

    public func resignID(_ id: ActorID) {
        _ = state.withLock { $0.hosted.removeValue(forKey: id) }
    }

    public func makeInvocationEncoder() -> InvocationEncoder {
        YonderInvocationEncoder(attachments: transport?.acceptsAttachments ?? false)
    }

    /// The hosted actor with `id`, if it is alive.
    package func hostedActor(_ id: ActorID) -> (any DistributedActor)? {
        state.withLock { $0.hosted[id] }
    }

    /// Drops the system's reference to a hosted actor; the actor is freed once nothing else
    /// holds it. Returns false if no such actor was hosted.
    @discardableResult
    package func releaseHosted(_ id: ActorID) -> Bool {
        state.withLock { $0.hosted.removeValue(forKey: id) } != nil
    }

    /// The ids of every hosted actor.
    package var hostedIDs: [ActorID] {
        state.withLock { Array($0.hosted.keys) }
    }

    public func remoteCall<Act, Err, Res>(
        on actor: Act,
        target: RemoteCallTarget,
        invocation: inout InvocationEncoder,
        throwing: Err.Type,
        returning: Res.Type
    ) async throws -> Res where Act: DistributedActor, Act.ID == ActorID, Err: Error, Res: Codable {
        let result = try await send(actor.id, target, invocation)
        return try result.decode(as: Res.self, path: ["result"])
    }

    public func remoteCallVoid<Act, Err>(
        on actor: Act,
        target: RemoteCallTarget,
        invocation: inout InvocationEncoder,
        throwing: Err.Type
    ) async throws where Act: DistributedActor, Act.ID == ActorID, Err: Error {
        _ = try await send(actor.id, target, invocation)
    }

    private func send(_ id: ActorID, _ target: RemoteCallTarget, _ invocation: InvocationEncoder) async throws -> Payload {
        guard let transport else {
            throw ProtocolError(.unknownObject, "object \(id) is not hosted by this agent")
        }
        if !invocation.genericSubstitutions.isEmpty {
            throw ProtocolError(.unknownMethod, "\(target.identifier): generic distributed methods cannot be called remotely yet; make the method non-generic")
        }
        return try await transport.invoke(
            object: id.object, method: target.identifier, arguments: invocation.arguments, attachments: invocation.attachments ?? [])
    }

    /// Runs the distributed method `method` of a hosted actor with JSON arguments: what the
    /// agent does for an `invoke` message. Throws `unknown_method` when the actor has no such
    /// method, `decode_failed` for bad arguments, and rethrows what the method throws.
    package func execute(
        on actor: any DistributedActor, method: String, arguments: [JSONValue], attachments: [Data] = []
    ) async throws -> Payload {
        try await executeOpened(on: actor, method: method, arguments: arguments, attachments: attachments)
    }

    private func executeOpened<Act: DistributedActor>(
        on actor: Act, method: String, arguments: [JSONValue], attachments: [Data]
    ) async throws -> Payload {
        var decoder = YonderInvocationDecoder(arguments: arguments, attachments: attachments)
        let handler = YonderResultHandler()
        do {
            try await executeDistributedTarget(
                on: actor, target: RemoteCallTarget(method), invocationDecoder: &decoder, handler: handler)
        } catch let error as ExecuteDistributedTargetError {
            throw ProtocolError(.unknownMethod, "\(type(of: actor)) has no distributed method \(method) (\(error.errorCode)); are the app and the agent built from the same source?")
        }
        return try handler.outcome.get()
    }
}
