#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif
public import Distributed
package import YonderProtocol

/// Records a distributed call's arguments as JSON values, one per parameter.
public struct YonderInvocationEncoder: DistributedTargetInvocationEncoder {
    public typealias SerializationRequirement = Codable

    /// The encoded arguments, in order.
    package private(set) var arguments: [JSONValue] = []
    /// The binary attachments their `Data` became, or nil when the peer accepts none.
    package private(set) var attachments: [Data]?
    /// Mangled names of generic substitutions (calls that need any are refused).
    package private(set) var genericSubstitutions: [String] = []

    /// An empty invocation; the runtime records into it.
    public init() {}

    /// An empty invocation whose `Data` arguments become binary attachments.
    package init(attachments: Bool) {
        self.attachments = attachments ? [] : nil
    }

    public mutating func recordGenericSubstitution<T>(_ type: T.Type) throws {
        genericSubstitutions.append(_mangledTypeName(type) ?? String(reflecting: type))
    }

    public mutating func recordArgument<Value: Codable>(_ argument: RemoteCallArgument<Value>) throws {
        arguments.append(try JSONBytes.encode(argument.value, attachments: &attachments))
    }

    public mutating func recordErrorType<E: Error>(_ type: E.Type) throws {}

    public mutating func recordReturnType<R: Codable>(_ type: R.Type) throws {}

    public mutating func doneRecording() throws {}
}
