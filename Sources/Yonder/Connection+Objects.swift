#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif
import Distributed
public import YonderCore
public import YonderProtocol

extension Connection {
    /// Creates a remote object of type `type` in the agent and returns a proxy whose
    /// `distributed func`s run there.
    ///
    /// ```swift
    /// let counter = try await connection.create(Counter.self, .init(start: 10), name: "c1")
    /// let value = try await counter.increment(by: 5)
    /// ```
    /// The object outlives this connection: it stays in the agent until `release` or until
    /// the agent exits, and a named one can be found again with `lookup(_:named:)`.
    /// - Parameters:
    ///   - type: the object's type, shared by the app and the agent.
    ///   - arguments: the arguments of its initializer.
    ///   - name: a name other connections can look the object up by; nil for none.
    ///   - reuse: when an object of the same type already holds `name`, return it instead
    ///     of failing with `.nameTaken`.
    public func create<T: RemoteObject>(
        _ type: T.Type, _ arguments: T.Arguments, name: String? = nil, reuse: Bool = false
    ) async throws -> T {
        let operation = "create \(T.remoteName)"
        let encoded: Payload
        do {
            encoded = try encodeArguments(arguments)
        } catch {
            throw YonderError.local(error, operation: operation)
        }
        let value = try await request(operation, timeout: nil) { id, _ in
            .create(.init(
                id: id, objectType: T.remoteName, arguments: encoded.value, name: name, reuse: reuse,
                attachments: encoded.attachments))
        }.value
        remember(objectNamed: name)
        return try proxy(T.self, for: reference(value, operation: operation), operation: operation)
    }

    /// Finds the object named `name` (made by any connection) and returns a proxy for it.
    ///
    /// Throws `YonderError` with `.unknownObject` when no live object has that name, and
    /// `.unknownObjectType` when it is not a `T`.
    public func lookup<T: RemoteObject>(_ type: T.Type, named name: String) async throws -> T {
        let operation = "lookup \(name)"
        let value = try await request(operation, timeout: nil) { id, _ in .lookup(.init(id: id, name: name)) }.value
        let found = try reference(value, operation: operation)
        guard found.objectType == T.remoteName else {
            throw YonderError(
                .unknownObjectType,
                "the object named \"\(name)\" is a \(found.objectType), not a \(T.remoteName)",
                operation: operation)
        }
        remember(objectNamed: name)
        return try proxy(T.self, for: found, operation: operation)
    }

    /// Removes `object` from the agent. Later calls on any proxy for it fail with
    /// `.unknownObject`.
    public func release<T: RemoteObject>(_ object: T) async throws {
        let id = object.id.object
        _ = try await request("release \(T.remoteName) \(id)", timeout: nil) { requestID, _ in
            .release(.init(id: requestID, object: id))
        }
    }

    /// Every live object in the agent, sorted by object id.
    public func objects() async throws -> [ObjectReference] {
        try await builtIn("yonder.objects", [ObjectReference].self)
    }

    private func reference(_ value: JSONValue, operation: String) throws -> ObjectReference {
        do {
            return try JSONBytes.decode(ObjectReference.self, from: value, path: ["result"])
        } catch {
            throw YonderError.local(error, operation: operation)
        }
    }

    private func proxy<T: RemoteObject>(_ type: T.Type, for reference: ObjectReference, operation: String) throws -> T {
        do {
            return try T.resolve(id: RemoteObjectID(reference.object), using: YonderActorSystem(transport: self))
        } catch {
            throw YonderError.wrapping(error, operation: operation)
        }
    }
}

extension Connection: RemoteInvocationTransport {
    /// Sends an `invoke` for a proxy's `distributed func` call; `YonderActorSystem` calls
    /// this, apps call the proxy's methods instead.
    package func invoke(object: String, method: String, arguments: [JSONValue], attachments: [Data]) async throws -> Payload {
        try await request("invoke \(Self.readableMethod(method)) on \(object)", timeout: nil) { id, seconds in
            .invoke(.init(id: id, object: object, method: method, arguments: arguments, timeout: seconds, attachments: attachments))
        }
    }

    /// A distributed target's identifier is a mangled symbol; its readable part is the
    /// method's base name, which is enough to tell calls apart in an error message.
    static func readableMethod(_ identifier: String) -> String {
        guard identifier.hasPrefix("$s") else { return identifier }
        // Mangled names spell identifiers as <length><name>; the last one before the
        // argument labels is usually the method.
        var names: [Substring] = []
        var rest = Substring(identifier.dropFirst(2))
        while let digitStart = rest.firstIndex(where: \.isNumber) {
            let digits = rest[digitStart...].prefix(while: \.isNumber)
            guard let length = Int(digits) else { break }
            let nameStart = digits.endIndex
            guard rest.distance(from: nameStart, to: rest.endIndex) >= length else { break }
            let nameEnd = rest.index(nameStart, offsetBy: length)
            names.append(rest[nameStart..<nameEnd])
            rest = rest[nameEnd...]
        }
        guard names.count >= 3 else { return identifier }
        return "\(names[1]).\(names[2])"
    }
}
