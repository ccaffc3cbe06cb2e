// The module both sides link: the app calls these types, the agent runs them.
import Distributed
public import YonderCore
import Logging
import Foundation

/// Adds numbers, in the agent.
public struct Add: RemoteFunction {
    public static func run(_ numbers: [Int]) async throws -> Int { numbers.reduce(0, +) }
    /// Adding has no effects: a map may run it again elsewhere if a node is lost.
    public static var isIdempotent: Bool { true }
}

/// Greets someone and logs it; the log line travels back to the caller.
public struct Greet: RemoteFunction {
    public static func run(_ name: String) async throws -> String {
        Logger(label: "quickstart.greet").info("greeting \(name)")
        let node = ProcessInfo.processInfo.environment["YONDER_NODE_RANK"].map { "node \($0), " } ?? ""
        return "Hello, \(name), from \(node)process \(ProcessInfo.processInfo.processIdentifier)!"
    }
}

/// A counter whose value lives in the agent.
public distributed actor Counter: RemoteObject {
    public typealias ActorSystem = YonderActorSystem

    public struct Arguments: Codable, Sendable {
        public var start: Int
        public init(start: Int) { self.start = start }
    }

    private var value: Int

    public init(_ arguments: Arguments, actorSystem: ActorSystem) {
        value = arguments.start
        self.actorSystem = actorSystem
    }

    /// Adds `n` and returns the new value.
    public distributed func increment(by n: Int) -> Int {
        value += n
        return value
    }
}
