#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif
public import Distributed
package import YonderProtocol

/// Hands a hosted actor's distributed method its arguments, decoded from JSON values.
public struct YonderInvocationDecoder: DistributedTargetInvocationDecoder {
    public typealias SerializationRequirement = Codable

    private let arguments: [JSONValue]
    private let attachments: [Data]
    private var index = 0

    /// Wraps the `arguments` of an `invoke` message and the attachments they refer to.
    package init(arguments: [JSONValue], attachments: [Data] = []) {
        self.arguments = arguments
        self.attachments = attachments
    }

    public mutating func decodeGenericSubstitutions() throws -> [any Any.Type] { [] }

    public mutating func decodeNextArgument<Argument: Codable>() throws -> Argument {
        guard index < arguments.count else {
            throw ProtocolError(.decodeFailed, "the method takes more than the \(arguments.count) argument(s) sent", path: ["arguments", String(index)])
        }
        defer { index += 1 }
        return try JSONBytes.decode(Argument.self, from: arguments[index], path: ["arguments", String(index)], attachments: attachments)
    }

    public mutating func decodeErrorType() throws -> (any Any.Type)? { nil }

    public mutating func decodeReturnType() throws -> (any Any.Type)? { nil }
}
