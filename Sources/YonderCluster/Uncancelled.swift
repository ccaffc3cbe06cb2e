/// Runs `body` to its end even when the calling task is cancelled: for cleanup after an
/// interrupted operation, whose own steps would otherwise fail at once with a cancellation.
func uncancelled<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
    // A new unstructured task does not inherit the caller's cancellation.
    await Task { await body() }.value
}
