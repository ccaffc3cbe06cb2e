/// What `create` and `lookup` return: a handle on a live object.
public struct ObjectReference: Sendable, Hashable, Codable {
    /// The agent-assigned object id, used by `invoke` and `release`.
    public var object: String
    /// The registered type name.
    public var objectType: String
    /// The name it was created under, if any.
    public var name: String?

    /// Makes a reference to object `object` of type `objectType`, named `name` if it has one.
    public init(object: String, objectType: String, name: String? = nil) {
        self.object = object
        self.objectType = objectType
        self.name = name
    }
}
