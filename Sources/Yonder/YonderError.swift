public import YonderProtocol

/// A failure of a Yonder call or connection: one the agent reported, or one the client
/// detected (a dropped connection, a missed deadline).
///
/// Switch on `code`; show `description` to people. It never contains the agent's token.
/// ```swift
/// do {
///     _ = try await connection.run(Fail.self, "boom")
/// } catch let error as YonderError where error.code == .remoteError {
///     print(error.errorType ?? "?", error.message)
/// }
/// ```
public struct YonderError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure: the protocol's error codes (`.unknownFunction`, `.decodeFailed`,
    /// `.remoteError`, `.cancelled`, `.timedOut`, …) plus the client's `.connectionLost` and
    /// `.connectionFailed`.
    public typealias Code = ProtocolError.Code

    /// The kind of failure, for programs to switch on.
    public var code: Code
    /// What happened and, where it helps, what to do about it.
    public var message: String
    /// For `.decodeFailed`: where in the arguments (or the result) the value did not match,
    /// e.g. `["arguments", "y"]`.
    public var path: [String]?
    /// For `.remoteError`: the Swift type name of the error the remote code threw.
    public var errorType: String?
    /// What the client was doing: the function, object type or method it called, e.g.
    /// `call Mirror` or `create Counter`.
    public var operation: String?

    /// Makes an error; `operation` names what was being done.
    public init(_ code: Code, _ message: String, path: [String]? = nil, errorType: String? = nil, operation: String? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.errorType = errorType
        self.operation = operation
    }

    /// The operation, code, path, error type and message, on one line.
    public var description: String {
        var text = operation.map { "\($0): " } ?? ""
        text += code.rawValue
        if let path, !path.isEmpty { text += " at \(path.joined(separator: "."))" }
        text += ": "
        if let errorType { text += "\(errorType): " }
        text += message
        return text
    }
}

extension YonderError.Code {
    /// The client could not open a connection to the agent (refused, unreachable, or no
    /// answer to the handshake). Never sent by an agent.
    public static let connectionFailed = Self("connection_failed")

    /// What answered could not prove that it holds the agent's token: not the agent this
    /// client was looking for (a stale port another process took, or another agent). Nothing
    /// secret was sent to it. Never sent by an agent.
    public static let agentNotVerified = Self("agent_not_verified")
}

extension YonderError {
    /// An error the agent sent for a request.
    @inline(never)
    static func remote(_ failure: Message.Failure, operation: String?) -> YonderError {
        YonderError(
            failure.error.code, failure.error.message, path: failure.error.path,
            errorType: failure.errorType, operation: operation)
    }

    /// A protocol error detected on this side, tagged with what was being done.
    @inline(never)
    static func local(_ error: ProtocolError, operation: String?) -> YonderError {
        YonderError(error.code, error.message, path: error.path, operation: operation)
    }

    /// Any error thrown while doing `operation`, as a `YonderError`.
    @inline(never)
    static func wrapping(_ error: any Error, operation: String?) -> YonderError {
        switch error {
        case var error as YonderError:
            if error.operation == nil { error.operation = operation }
            return error
        case let error as ProtocolError:
            return .local(error, operation: operation)
        default:
            return YonderError(.internal, String(describing: error), errorType: String(reflecting: type(of: error)), operation: operation)
        }
    }
}
