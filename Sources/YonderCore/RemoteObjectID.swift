/// The identity of a remote object: the id the agent assigned when it created the object.
public struct RemoteObjectID: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The agent-assigned object id, as `create` and `lookup` return it.
    public var object: String

    /// Wraps an object id returned by the agent.
    public init(_ object: String) { self.object = object }

    public var description: String { object }
}
