import Distributed
import YonderCore
import YonderProtocol

/// Marks an error thrown by user code (a function body or an object's initializer), so that
/// it is reported as `remote_error` rather than as a protocol failure.
struct UserCodeError: Error {
    var underlying: any Error
}

/// A callable function: a user's `RemoteFunction` or a built-in.
struct FunctionEntry: Sendable {
    var name: String
    /// Runs the function on its input (a value and its binary attachments).
    var run: @Sendable (Payload, AgentState) async throws -> Payload

    init(name: String, run: @escaping @Sendable (Payload, AgentState) async throws -> Payload) {
        self.name = name
        self.run = run
    }

    /// A function of JSON alone: attachments in its input are read as base64 strings.
    init(name: String, json: @escaping @Sendable (JSONValue, AgentState) async throws -> JSONValue) {
        self.name = name
        self.run = { input, agent in Payload(try await json(input.inlined(), agent)) }
    }
}

/// A creatable object type: a user's `RemoteObject`.
struct ObjectTypeEntry: Sendable {
    var name: String
    var create: @Sendable (Payload, YonderActorSystem) async throws -> any DistributedActor
}

extension RemoteFunction {
    static var registryEntry: FunctionEntry {
        FunctionEntry(name: remoteName) { arguments, _ in
            let input = try arguments.decode(as: Input.self, path: ["arguments"])
            let output: Output
            do {
                output = try await run(input)
            } catch {
                throw UserCodeError(underlying: error)
            }
            return try Payload(encoding: output)
        }
    }
}

extension RemoteObject {
    static var registryEntry: ObjectTypeEntry {
        ObjectTypeEntry(name: remoteName) { arguments, system in
            let decoded = try arguments.decode(as: Arguments.self, path: ["arguments"])
            do {
                return try await Self(decoded, actorSystem: system)
            } catch {
                throw UserCodeError(underlying: error)
            }
        }
    }
}

/// Everything an agent can run: functions (built-ins included) and object types, by name.
struct Registry: Sendable {
    private(set) var functions: [String: FunctionEntry] = [:]
    private(set) var objectTypes: [String: ObjectTypeEntry] = [:]

    init(functions: [any RemoteFunction.Type], objects: [any RemoteObject.Type]) throws(AgentError) {
        for function in functions {
            try add(function.registryEntry)
        }
        for object in objects {
            let entry = object.registryEntry
            guard objectTypes[entry.name] == nil else {
                throw AgentError("two object types are registered as \"\(entry.name)\"; give one a distinct `remoteName`")
            }
            objectTypes[entry.name] = entry
        }
    }

    mutating func add(_ entry: FunctionEntry) throws(AgentError) {
        guard functions[entry.name] == nil else {
            throw AgentError("two functions are registered as \"\(entry.name)\"; give one a distinct `remoteName`")
        }
        functions[entry.name] = entry
    }
}

/// A failure to start or run the agent itself (not a request's failure).
public struct AgentError: Error, CustomStringConvertible, Sendable {
    /// What went wrong and what to do.
    public var message: String

    init(_ message: String) { self.message = message }

    public var description: String { message }
}
