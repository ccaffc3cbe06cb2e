import Distributed
import Synchronization
import YonderCore
import YonderProtocol

/// The agent's live objects, by id and by name, and where each lives. Objects outlive the
/// connection that made them: only `release`, the death of their worker process, or the
/// agent's exit ends them. The actors of objects that live in this process are held by the
/// actor system alone (`system`), the one table of live actors.
final class ObjectTable: Sendable {
    /// Where an object lives.
    enum Host: Sendable {
        /// In this process (an agent run in-process, or inside a worker): `system` hosts it.
        case local
        /// In a worker process of its own.
        case worker(Worker)
    }

    private struct Entry {
        var reference: ObjectReference
        var host: Host
    }

    private struct State {
        var byID: [String: Entry] = [:]
        var byName: [String: String] = [:]
        /// Names claimed by a `create` that is still running its initializer.
        var pendingNames: Set<String> = []
        /// Objects whose process died, with the story, so that a later call says why.
        var lost: [String: String] = [:]
        var nextID = 1
    }

    let system: YonderActorSystem
    private let state = Mutex(State())

    /// A table whose in-process objects get ids `o1`, `o2`…, or, in a worker hosting one
    /// object, `firstID` (the id the agent gave it).
    init(firstID: String? = nil) {
        system = firstID.map { YonderActorSystem(firstID: $0) } ?? YonderActorSystem()
    }

    /// A fresh id for an object hosted by a worker.
    func newID() -> String {
        state.withLock { state in
            defer { state.nextID += 1 }
            return "o\(state.nextID)"
        }
    }

    /// Creates an object of the type named `typeName`: `make` builds it (running its
    /// initializer) and says where it lives. The name is claimed first, so two creates of
    /// one name cannot both run.
    func create(typeName: String, name: String?, reuse: Bool, make: () async throws -> (id: String, host: Host)) async throws -> ObjectReference {
        if let name {
            let existing: ObjectReference? = try state.withLock { state throws(ProtocolError) in
                if let id = state.byName[name], let entry = state.byID[id] {
                    if reuse && entry.reference.objectType == typeName { return entry.reference }
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
        let (id, host) = try await make()
        let reference = ObjectReference(object: id, objectType: typeName, name: name)
        state.withLock { state in
            state.byID[id] = Entry(reference: reference, host: host)
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

    /// The actor of object `id`, which lives in this process.
    func actor(_ id: String) throws(ProtocolError) -> any DistributedActor {
        guard let actor = system.hostedActor(RemoteObjectID(id)) else {
            throw state.withLock { Self.unknown(id, $0) }
        }
        return actor
    }

    /// The live object `id` and where it lives.
    func host(_ id: String) throws(ProtocolError) -> (ObjectReference, Host) {
        try state.withLock { state throws(ProtocolError) in
            guard let entry = state.byID[id] else { throw Self.unknown(id, state) }
            return (entry.reference, entry.host)
        }
    }

    /// Removes `id` from the table and returns where it lived; an actor in this process is
    /// dropped here, a worker is the caller's to stop.
    @discardableResult
    func release(_ id: String) throws(ProtocolError) -> Host {
        let removed = try state.withLock { state throws(ProtocolError) -> Entry in
            guard let entry = state.byID.removeValue(forKey: id) else { throw Self.unknown(id, state) }
            if let name = entry.reference.name { state.byName[name] = nil }
            return entry
        }
        if case .local = removed.host { system.releaseHosted(RemoteObjectID(id)) }
        return removed.host
    }

    /// The process of object `id` died: the object is gone, and its name free again.
    func lost(_ id: String, story: String) {
        state.withLock { state in
            guard let entry = state.byID.removeValue(forKey: id) else { return }
            if let name = entry.reference.name { state.byName[name] = nil }
            if state.lost.count >= 10_000, let any = state.lost.keys.first { state.lost[any] = nil }
            state.lost[id] = story
        }
    }

    private static func unknown(_ id: String, _ state: State) -> ProtocolError {
        if let story = state.lost[id] {
            return ProtocolError(.unknownObject, "object \(id) was lost: \(story); create it again", path: ["object"])
        }
        return ProtocolError(.unknownObject, "no live object has id \"\(id)\"; it was released, or the agent restarted", path: ["object"])
    }

    /// How many objects live.
    var count: Int { state.withLock { $0.byID.count } }

    /// Every live object, sorted by id (numerically: o2 before o10).
    var references: [ObjectReference] {
        state.withLock { Array($0.byID.values.map(\.reference)) }.sorted {
            ($0.object.count, $0.object) < ($1.object.count, $1.object)
        }
    }
}
