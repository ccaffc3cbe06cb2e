import Distributed
import Synchronization
import YonderCore
import YonderProtocol

/// The agent's live objects, by id and by name. Objects outlive the connection that made
/// them: only `release` or the agent's exit ends them.
final class ObjectTable: Sendable {
    private struct Entry {
        var reference: ObjectReference
        var actor: any DistributedActor
    }

    private struct State {
        var byID: [String: Entry] = [:]
        var byName: [String: String] = [:]
        /// Names claimed by a `create` that is still running its initializer.
        var pendingNames: Set<String> = []
    }

    let system = YonderActorSystem()
    private let state = Mutex(State())

    func create(_ type: ObjectTypeEntry, arguments: JSONValue, name: String?, reuse: Bool) async throws -> ObjectReference {
        if let name {
            let existing: ObjectReference? = try state.withLock { state throws(ProtocolError) in
                if let id = state.byName[name], let entry = state.byID[id] {
                    if reuse && entry.reference.objectType == type.name { return entry.reference }
                    throw ProtocolError(.nameTaken, "an object named \"\(name)\" exists already (\(entry.reference.objectType) \(id)); look it up, release it, or pass reuse", path: ["name"])
                }
                if state.pendingNames.contains(name) {
                    throw ProtocolError(.nameTaken, "an object named \"\(name)\" is being created by another request", path: ["name"])
                }
                state.pendingNames.insert(name)
                return nil
            }
            if let existing { return existing }
        }
        defer {
            if let name { _ = state.withLock { $0.pendingNames.remove(name) } }
        }
        let actor = try await type.create(arguments, system)
        let id = (actor.id as? RemoteObjectID)?.object ?? "\(actor.id)"
        let reference = ObjectReference(object: id, objectType: type.name, name: name)
        state.withLock { state in
            state.byID[id] = Entry(reference: reference, actor: actor)
            if let name { state.byName[name] = id }
        }
        return reference
    }

    func lookup(name: String) throws(ProtocolError) -> ObjectReference {
        try state.withLock { state throws(ProtocolError) in
            guard let id = state.byName[name], let entry = state.byID[id] else {
                throw ProtocolError(.unknownObject, "no object is named \"\(name)\"; create it first", path: ["name"])
            }
            return entry.reference
        }
    }

    func actor(_ id: String) throws(ProtocolError) -> any DistributedActor {
        guard let actor = state.withLock({ $0.byID[id]?.actor }) else {
            throw ProtocolError(.unknownObject, "no live object has id \"\(id)\"; it was released, or the agent restarted", path: ["object"])
        }
        return actor
    }

    func release(_ id: String) throws(ProtocolError) {
        let removed = state.withLock { state -> Entry? in
            guard let entry = state.byID.removeValue(forKey: id) else { return nil }
            if let name = entry.reference.name { state.byName[name] = nil }
            return entry
        }
        guard removed != nil else {
            throw ProtocolError(.unknownObject, "no live object has id \"\(id)\"", path: ["object"])
        }
        system.releaseHosted(RemoteObjectID(id))
    }

    /// Every live object, sorted by id (numerically: o2 before o10).
    var references: [ObjectReference] {
        state.withLock { Array($0.byID.values.map(\.reference)) }.sorted {
            ($0.object.count, $0.object) < ($1.object.count, $1.object)
        }
    }
}
