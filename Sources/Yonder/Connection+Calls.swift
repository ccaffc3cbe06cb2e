#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
public import YonderCore
public import YonderProtocol

extension Connection {
    /// Runs the remote function `function` in the agent with `input` and returns its output.
    ///
    /// ```swift
    /// let sum = try await connection.run(Add.self, [1, 2, 3])
    /// ```
    /// - Parameters:
    ///   - function: the function's type, shared by the app and the agent.
    ///   - input: its input, encoded as JSON.
    ///   - timeout: the agent stops the call after this long (`.timedOut`); nil uses
    ///     `configuration.defaultTimeout`.
    ///   - onLog: receives the call's remote log lines, all before the call returns; nil
    ///     forwards them to `configuration.logger`.
    /// - Throws: `YonderError`: `.unknownFunction` when the agent does not register
    ///   `function`, `.decodeFailed` with a `path` when the agent cannot decode `input`,
    ///   `.remoteError` when the function throws, `.cancelled`, `.timedOut`, `.connectionLost`.
    public func run<F: RemoteFunction>(
        _ function: F.Type, _ input: F.Input, timeout: Duration? = nil,
        onLog: (@Sendable (RemoteLogRecord) -> Void)? = nil
    ) async throws -> F.Output {
        try await typedCall(
            F.remoteName, input: input, as: F.Output.self, timeout: timeout, onLog: onLog,
            mismatch: "the agent's result does not decode as \(F.Output.self) (are the app and the agent built from the same source?)")
    }

    /// Calls the function registered as `function` with JSON arguments and returns its JSON
    /// result: the untyped form of `run`, for built-ins and dynamic callers.
    public func call(
        _ function: String, arguments: JSONValue = nil, timeout: Duration? = nil,
        onLog: (@Sendable (RemoteLogRecord) -> Void)? = nil
    ) async throws -> JSONValue {
        try await call(function, arguments: Payload(arguments), timeout: timeout, onLog: onLog, operation: "call \(function)")
            .inlined()
    }

    func call(
        _ function: String, arguments: Payload, timeout: Duration?,
        onLog: (@Sendable (RemoteLogRecord) -> Void)?, operation: String,
        onOutput: (@Sendable (Message.Output) -> Void)? = nil
    ) async throws -> Payload {
        let events = onLog == nil && onOutput == nil ? nil : RequestEvents(onLog: onLog, onOutput: onOutput)
        return try await request(operation, timeout: timeout, events: events) { id, seconds in
            .call(.init(id: id, function: function, arguments: arguments.value, timeout: seconds, attachments: arguments.attachments))
        }
    }

    /// Encodes a request's input; its `Data` travels as raw bytes after the message when the
    /// agent accepts that, else as base64.
    func encodeArguments(_ input: some Encodable) throws(ProtocolError) -> Payload {
        var attachments: [Data]? = agent.acceptsAttachments ? [] : nil
        let value = try JSONBytes.encode(input, attachments: &attachments)
        return Payload(value, attachments: attachments ?? [])
    }

    /// Whether the agent accepts binary attachments (from its `hello`).
    package var acceptsAttachments: Bool { agent.acceptsAttachments }

    /// Calls the agent's no-op `yonder.ping` and returns the round-trip time.
    @discardableResult
    public func ping() async throws -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        _ = try await call("yonder.ping")
        return clock.now - start
    }

    /// Asks the agent about itself: versions, host, registered functions and object types,
    /// and live objects.
    public func info() async throws -> AgentInfo {
        try await builtIn("yonder.info", AgentInfo.self)
    }

    /// Calls a built-in with a typed input (its `Data` as attachments where the agent takes
    /// them) and decodes its result as `T`.
    func builtIn<T: Decodable>(_ function: String, _ type: T.Type, input: some Encodable = JSONValue.null, timeout: Duration? = nil) async throws -> T {
        try await typedCall(function, input: input, as: T.self, timeout: timeout, onLog: nil, mismatch: nil)
    }

    /// The path of every typed call: encodes `input` (`Data` as attachments where the agent
    /// takes them), calls `function` and decodes its result as `T`; a result that does not
    /// decode is reported after `mismatch`, when given.
    private func typedCall<T: Decodable>(
        _ function: String, input: some Encodable, as type: T.Type, timeout: Duration?,
        onLog: (@Sendable (RemoteLogRecord) -> Void)?, mismatch: String?
    ) async throws -> T {
        let operation = "call \(function)"
        let arguments: Payload
        do {
            arguments = try encodeArguments(input)
        } catch {
            throw YonderError.local(error, operation: operation)
        }
        let result = try await call(function, arguments: arguments, timeout: timeout, onLog: onLog, operation: operation)
        do {
            return try result.decode(as: T.self, path: ["result"])
        } catch {
            var failure = YonderError.local(error, operation: operation)
            if let mismatch { failure.message = "\(mismatch): \(failure.message)" }
            throw failure
        }
    }
}
