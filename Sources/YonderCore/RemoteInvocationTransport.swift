package import YonderProtocol

/// How a client-side `YonderActorSystem` reaches the agent: the client's connection
/// implements this by sending an `invoke` message and awaiting its `result`.
package protocol RemoteInvocationTransport: Sendable {
    /// Calls `method` of the object `object` with one JSON value per parameter and returns
    /// the method's JSON result (`null` for a method that returns nothing).
    func invoke(object: String, method: String, arguments: [JSONValue]) async throws -> JSONValue
}
