#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif
package import YonderProtocol

/// How a client-side `YonderActorSystem` reaches the agent: the client's connection
/// implements this by sending an `invoke` message and awaiting its `result`.
package protocol RemoteInvocationTransport: Sendable {
    /// Whether the peer accepts binary attachments, so `Data` arguments may become some.
    var acceptsAttachments: Bool { get }

    /// Calls `method` of the object `object` with one JSON value per parameter (and the
    /// attachments they refer to) and returns the method's result (`null` for a method that
    /// returns nothing).
    func invoke(object: String, method: String, arguments: [JSONValue], attachments: [Data]) async throws -> Payload
}
