import Distributed
import YonderCore

public struct Add: RemoteFunction {
    public static func run(_ numbers: [Int]) async throws -> Int { numbers.reduce(0, +) }
}

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
    public distributed func increment(by n: Int) -> Int {
        value += n
        return value
    }
}
