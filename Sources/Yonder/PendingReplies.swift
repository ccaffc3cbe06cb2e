import YonderProtocol

/// What a request wants done with the messages the agent sends while it runs.
struct RequestEvents: Sendable {
    /// Receives `log` lines; nil forwards them to the connection's logger.
    var onLog: (@Sendable (RemoteLogRecord) -> Void)?
    /// Receives `output` chunks of `yonder.exec`.
    var onOutput: (@Sendable (Message.Output) -> Void)?
}

/// The requests of one connection that are waiting for their reply, by request id.
///
/// Lives inside the connection's `Mutex`; every method is quick and never suspends, and the
/// continuations it hands back are resumed by the caller after the lock is released.
struct PendingReplies {
    typealias Continuation = UnsafeContinuation<Payload, any Error>

    private struct Entry {
        enum Stage {
            /// Registered and being sent; the caller has not suspended yet.
            case sending
            /// The caller is suspended on this continuation.
            case waiting(Continuation)
            /// The reply came before the caller suspended.
            case finished(Result<Payload, YonderError>)
        }

        var stage: Stage = .sending
        var operation: String
        var events: RequestEvents?
        var timer: Task<Void, Never>?
        var cancelRequested = false
    }

    private var entries: [Int: Entry] = [:]
    private var nextID = 1
    /// Set once the connection is closed or lost; no request is registered after that.
    private(set) var failure: YonderError?

    var count: Int { entries.count }

    /// Allocates an id for a new request, or throws the connection's failure.
    mutating func register(operation: String, events: RequestEvents?) throws(YonderError) -> Int {
        if let failure { throw YonderError(failure.code, failure.message, operation: operation) }
        let id = nextID
        nextID = nextID == Self.maximumID ? 1 : nextID + 1
        entries[id] = Entry(operation: operation, events: events)
        return id
    }

    /// Ids travel as JSON numbers, exact up to 2^53 − 1.
    static let maximumID = 9_007_199_254_740_991

    /// Keeps the task that enforces the client-side deadline of `id`. Returns false when the
    /// request is already over (the caller cancels the timer).
    mutating func setTimer(_ id: Int, _ timer: Task<Void, Never>) -> Bool {
        guard entries[id] != nil else { return false }
        entries[id]!.timer = timer
        return true
    }

    /// The caller suspends on `continuation`; returns the result instead if it already came.
    mutating func suspend(_ id: Int, _ continuation: Continuation) -> Result<Payload, YonderError>? {
        guard let entry = entries[id] else {
            return .failure(failure ?? YonderError(.internal, "request \(id) vanished from the pending table"))
        }
        if case .finished(let result) = entry.stage {
            entries[id] = nil
            return result
        }
        entries[id]!.stage = .waiting(continuation)
        return nil
    }

    /// Ends request `id` with `result`. Returns the continuation to resume (outside the lock)
    /// and the timer to cancel; nil when the request is unknown or already over.
    mutating func complete(_ id: Int, _ result: Result<Payload, YonderError>) -> (Continuation?, Task<Void, Never>?)? {
        guard let entry = entries[id] else { return nil }
        switch entry.stage {
        case .sending:
            entries[id]!.stage = .finished(result)
            entries[id]!.timer = nil
            return (nil, entry.timer)
        case .waiting(let continuation):
            entries[id] = nil
            return (continuation, entry.timer)
        case .finished:
            return nil
        }
    }

    /// Forgets request `id`, which was never sent.
    mutating func discard(_ id: Int) {
        entries[id]?.timer?.cancel()
        entries[id] = nil
    }

    /// Marks `id` as cancelled by the caller; false if it is over or was cancelled already.
    mutating func markCancelled(_ id: Int) -> Bool {
        guard let entry = entries[id], !entry.cancelRequested else { return false }
        if case .finished = entry.stage { return false }
        entries[id]!.cancelRequested = true
        return true
    }

    /// What to do with the log and output messages of `id`, and its operation name.
    func events(for id: Int) -> (RequestEvents?, String)? {
        entries[id].map { ($0.events, $0.operation) }
    }

    /// The operation name of request `id`.
    func operation(of id: Int) -> String? { entries[id]?.operation }

    /// Fails every pending request with `error` and refuses new ones. Returns what the caller
    /// must resume and cancel outside the lock; nil if the connection had already failed.
    mutating func failAll(_ error: YonderError) -> [(Continuation, YonderError, Task<Void, Never>?)]? {
        guard failure == nil else { return nil }
        failure = error
        var waiting: [(Continuation, YonderError, Task<Void, Never>?)] = []
        for (id, entry) in entries {
            var specific = error
            specific.operation = entry.operation
            switch entry.stage {
            case .sending:
                entries[id]!.stage = .finished(.failure(specific))
                entries[id]!.timer = nil
                entry.timer?.cancel()
            case .waiting(let continuation):
                entries[id] = nil
                waiting.append((continuation, specific, entry.timer))
            case .finished:
                break
            }
        }
        return waiting
    }
}
