public import Distributed

/// A stateful object that lives inside the agent: a distributed actor whose `distributed func`s
/// the app calls through the connection.
///
/// ```swift
/// distributed actor Counter: RemoteObject {
///     typealias ActorSystem = YonderActorSystem
///     struct Arguments: Codable, Sendable { var start: Int }
///     private var value: Int
///     init(_ arguments: Arguments, actorSystem: ActorSystem) {
///         value = arguments.start
///         self.actorSystem = actorSystem
///     }
///     distributed func increment(by n: Int) -> Int { value += n; return value }
/// }
/// ```
public protocol RemoteObject: DistributedActor where ActorSystem == YonderActorSystem {
    /// What `create` passes to the initializer.
    associatedtype Arguments: Codable & Sendable

    /// The name the type is registered and created by. Defaults to the type's name.
    static var remoteName: String { get }

    /// Makes the object inside the agent.
    init(_ arguments: Arguments, actorSystem: ActorSystem) async throws
}

extension RemoteObject {
    /// The type's own name, e.g. `Counter`.
    public static var remoteName: String { String(describing: Self.self) }
}
