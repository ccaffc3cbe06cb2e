/// A named, typed function that runs inside the agent.
///
/// Define it in a module linked into both the app and the agent:
/// ```swift
/// struct Add: RemoteFunction {
///     static func run(_ numbers: [Int]) async throws -> Int { numbers.reduce(0, +) }
/// }
/// ```
/// The app calls it with `try await cluster.run(Add.self, [1, 2, 3])`; the compiler checks the
/// input and output types on both sides.
public protocol RemoteFunction: Sendable {
    /// What the caller passes.
    associatedtype Input: Codable & Sendable
    /// What the function returns.
    associatedtype Output: Codable & Sendable

    /// The name the function is registered and called by. Defaults to the type's name.
    static var remoteName: String { get }

    /// The body, run in the agent.
    static func run(_ input: Input) async throws -> Output

    /// Whether running it twice on the same input does no harm (it only computes, or its
    /// effects are keyed by the input): then `Cluster.map` may run an input again on another
    /// node when the node running it was lost. False unless the function says so.
    static var isIdempotent: Bool { get }
}

extension RemoteFunction {
    /// The type's own name, e.g. `Add`.
    public static var remoteName: String { String(describing: Self.self) }

    /// False: an input whose node was lost is not run again elsewhere.
    public static var isIdempotent: Bool { false }
}
