import Testing
import TestSupport
import YonderCluster

/// `Cluster.up` in a task of its own, for tests that cancel it midway.
struct CancellableUp {
    let task: Task<Cluster, any Error>
    private let ended: Locked<Bool>

    init(_ up: @escaping @Sendable () async throws -> Cluster) {
        let ended = Locked(false)
        self.ended = ended
        task = Task {
            defer { ended.withLock { $0 = true } }
            return try await up()
        }
    }

    /// Polls `reached` every `interval` until it holds, and returns true. Returns false, with
    /// an issue recorded, when `up` ends first, or when `limit` passes (`up` is cancelled then).
    /// `what` says what was awaited, for those issues.
    func wait(
        until what: String, every interval: Duration, within limit: Duration = .seconds(120), _ reached: () throws -> Bool
    ) async throws -> Bool {
        let started = ContinuousClock.now
        while try !reached() {
            if ended.withLock({ $0 }) {
                Issue.record("up ended before \(what): \(await task.result)")
                return false
            }
            guard ContinuousClock.now - started < limit else {
                task.cancel()
                Issue.record("not within \(limit): \(what)")
                return false
            }
            try await Task.sleep(for: interval)
        }
        return true
    }
}
