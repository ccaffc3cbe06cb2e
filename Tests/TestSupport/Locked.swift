import Synchronization

/// A value shared by concurrent test tasks and callbacks.
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    /// Holds `value`.
    public init(_ value: Value) { mutex = Mutex(value) }
    /// Runs `body` on the value, under the lock.
    public func withLock<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
