public import Distributed
package import YonderProtocol

/// Hands a hosted actor's distributed method its arguments, decoded from JSON values.
public struct YonderInvocationDecoder: DistributedTargetInvocationDecoder {
    public typealias SerializationRequirement = Codable

    private let arguments: [JSONValue]
    private var index = 0

    /// Wraps the `arguments` of an `invoke` message.
    package init(arguments: [JSONValue]) {
        self.arguments = arguments
    }

    public mutating func decodeGenericSubstitutions() throws -> [any Any.Type] { [] }

    public mutating func decodeNextArgument<Argument: Codable>() throws -> Argument {
        guard index < arguments.count else {
            throw ProtocolError(.decodeFailed, "the method takes more than the \(arguments.count) argument(s) sent", path: ["arguments", String(index)])
        }
        defer { index += 1 }
        return try arguments[index].decode(as: Argument.self, path: ["arguments", String(index)])
    }

    public mutating func decodeErrorType() throws -> (any Any.Type)? { nil }

    public mutating func decodeReturnType() throws -> (any Any.Type)? { nil }
}
