import Distributed
public import Foundation
public import YonderCore
import Logging
import Synchronization

// Remote functions and objects shared by the test agent (`yonder-test-agent`) and the tests
// that call it: the same module is linked on both sides, as a user's shared module would be.

/// Sums its input.
public struct Add: RemoteFunction {
    public static func run(_ numbers: [Int]) async throws -> Int { numbers.reduce(0, +) }
}

/// Returns its input unchanged (a no-op call with a payload).
public struct Echo: RemoteFunction {
    public static func run(_ text: String) async throws -> String { text }
}

/// Sleeps for the given number of milliseconds, then returns it. Honors cancellation.
public struct Sleep: RemoteFunction {
    public static func run(_ milliseconds: Int) async throws -> Int {
        try await Task.sleep(for: .milliseconds(milliseconds))
        return milliseconds
    }
}

/// An error user code throws.
public struct FixtureError: Error, CustomStringConvertible {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { "fixture failed: \(reason)" }
}

/// Always throws `FixtureError` with its input as the reason.
public struct Fail: RemoteFunction {
    public static func run(_ reason: String) async throws -> Int { throw FixtureError(reason: reason) }
}

/// A structured input, to check decode errors name the field.
public struct Point: Codable, Sendable, Equatable {
    public var x: Int
    public var y: Int
    public init(x: Int, y: Int) { self.x = x; self.y = y }
}

/// Mirrors a point through the origin.
public struct Mirror: RemoteFunction {
    public static func run(_ point: Point) async throws -> Point { Point(x: -point.x, y: -point.y) }
}

/// Named pieces of bytes: `Data` travels as binary attachments where both sides accept them.
public struct Chunks: Codable, Sendable, Equatable {
    public var label: String
    public var parts: [Data]
    public init(label: String, parts: [Data]) {
        self.label = label
        self.parts = parts
    }
}

/// Reverses the order of the parts and the bytes of each, and upper-cases the label.
public struct ReverseChunks: RemoteFunction {
    public static func run(_ chunks: Chunks) async throws -> Chunks {
        Chunks(label: chunks.label.uppercased(), parts: chunks.parts.reversed().map { Data($0.reversed()) })
    }
}

/// Writes `count` log lines through swift-log, then returns `count`.
public struct LogLines: RemoteFunction {
    public static func run(_ count: Int) async throws -> Int {
        let logger = Logger(label: "fixtures.log-lines")
        for i in 0..<count {
            logger.info("line \(i)")
        }
        return count
    }
}

/// Adds `Int.max` to its input: for any positive input the arithmetic overflows, and Swift
/// stops the process with a trap (user code that crashes).
public struct Overflow: RemoteFunction {
    public static func run(_ n: Int) async throws -> Int { n + Int.max }
}

/// Waits, computing (it never suspends), until `parties` calls with the same `key` have
/// arrived, for at most 5 seconds; returns whether they all did. Calls that run one at a time
/// never meet: this tells whether the agent runs calls in parallel.
public struct Rendezvous: RemoteFunction {
    public struct Input: Codable, Sendable {
        public var key: String
        public var parties: Int
        public init(key: String, parties: Int) { self.key = key; self.parties = parties }
    }

    private static let arrived = Mutex<[String: Int]>([:])

    public static func run(_ input: Input) async throws -> Bool {
        arrived.withLock { $0[input.key, default: 0] += 1 }
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if arrived.withLock({ $0[input.key, default: 0] }) >= input.parties { return true }
        }
        return false
    }
}

/// A stateful counter.
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

    /// The current value.
    public distributed func current() -> Int { value }

    /// The bytes reversed, with the value as a label: `Data` through a method.
    public distributed func reversed(_ data: Data) -> Chunks {
        Chunks(label: String(value), parts: [Data(data.reversed())])
    }

    /// Throws `FixtureError`.
    public distributed func fail(_ reason: String) throws {
        throw FixtureError(reason: reason)
    }
}

/// An object whose initializer stops the process (`fatalError`) when asked to.
public distributed actor Fragile: RemoteObject {
    public typealias ActorSystem = YonderActorSystem

    public struct Arguments: Codable, Sendable {
        public var trap: Bool
        public init(trap: Bool) { self.trap = trap }
    }

    public init(_ arguments: Arguments, actorSystem: ActorSystem) {
        if arguments.trap { fatalError("Fragile was told to trap") }
        self.actorSystem = actorSystem
    }

    /// Answers `true`.
    public distributed func alive() -> Bool { true }
}

/// Every function the test agent registers.
public let fixtureFunctions: [any RemoteFunction.Type] = [Add.self, Echo.self, Sleep.self, Fail.self, Mirror.self, LogLines.self, Overflow.self, Rendezvous.self, ReverseChunks.self]
/// Every object type the test agent registers.
public let fixtureObjects: [any RemoteObject.Type] = [Counter.self, Fragile.self]
