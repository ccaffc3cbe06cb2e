import Yonder
public import YonderCore
import Synchronization

/// Work spread over the nodes, as Ray's and Modal's `map`: a remote function on many inputs,
/// each node's connection carrying a bounded number of calls at once.
extension Cluster {
    /// Runs `function` on every input, spread over all nodes with at most
    /// `concurrencyPerNode` calls in flight on each (a node that answers faster takes more),
    /// and returns the outputs in input order. The first input that fails stops the rest and
    /// its error is thrown (see ``mapResults(_:_:concurrencyPerNode:)`` to get every outcome).
    ///
    /// A node lost midway: its inputs are run again on the other nodes when the function is
    /// idempotent (its `isIdempotent` is true); otherwise they fail with the error that
    /// lost it, since they may or may not have run.
    public func map<F: RemoteFunction>(_ function: F.Type, _ inputs: [F.Input], concurrencyPerNode: Int = 8) async throws -> [F.Output] {
        let outcomes = await distribute(function, inputs, concurrencyPerNode: concurrencyPerNode, stopOnError: true) { _, _ in }
        if let failure = outcomes.lazy.compactMap({ outcome -> (any Error)? in
            if case .failure(let error)? = outcome { return error }
            return nil
        }).first {
            throw failure
        }
        return outcomes.map { try! $0!.get() }
    }

    /// As ``map(_:_:concurrencyPerNode:)``, but every input runs, and each outcome is
    /// returned, in input order: the output, or the error of that input (Modal's
    /// `return_exceptions=True`).
    public func mapResults<F: RemoteFunction>(
        _ function: F.Type, _ inputs: [F.Input], concurrencyPerNode: Int = 8
    ) async -> [Result<F.Output, any Error>] {
        await distribute(function, inputs, concurrencyPerNode: concurrencyPerNode, stopOnError: false) { _, _ in }.map { $0! }
    }

    /// As ``map(_:_:concurrencyPerNode:)``, but each output comes as soon as it is ready,
    /// with the index of its input; the sequence throws the first failure.
    public func mapAsCompleted<F: RemoteFunction>(
        _ function: F.Type, _ inputs: [F.Input], concurrencyPerNode: Int = 8
    ) -> AsyncThrowingStream<(index: Int, output: F.Output), any Error> {
        let (stream, continuation) = AsyncThrowingStream<(index: Int, output: F.Output), any Error>.makeStream()
        let task = Task {
            _ = await distribute(function, inputs, concurrencyPerNode: concurrencyPerNode, stopOnError: true) { index, outcome in
                switch outcome {
                case .success(let output): continuation.yield((index, output))
                case .failure(let error): continuation.finish(throwing: error)
                }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    /// Runs `function` once on every node with the same input; the outputs in node order.
    public func broadcast<F: RemoteFunction>(_ function: F.Type, _ input: F.Input) async throws -> [F.Output] {
        try await withThrowingTaskGroup(of: (Int, F.Output).self) { group in
            for node in 0..<nodeCount {
                group.addTask { (node, try await self.connection(node: node).run(function, input)) }
            }
            var outputs = [F.Output?](repeating: nil, count: nodeCount)
            for try await (node, output) in group { outputs[node] = output }
            return outputs.map { $0! }
        }
    }

    /// Whether `error` means the node (not the input) failed: its connection is gone and
    /// could not be made again.
    static func isNodeFailure(_ error: any Error) -> Bool {
        if let error = error as? YonderError { return [.connectionLost, .connectionFailed].contains(error.code) }
        return error is ClusterError
    }

    /// The work of the maps: workers per node take inputs from one queue; `onOutcome` hears
    /// each outcome as it comes.
    func distribute<F: RemoteFunction>(
        _ function: F.Type, _ inputs: [F.Input], concurrencyPerNode: Int, stopOnError: Bool,
        onOutcome: @escaping @Sendable (Int, Result<F.Output, any Error>) -> Void
    ) async -> [Result<F.Output, any Error>?] {
        let queue = WorkQueue<F.Output>(count: inputs.count, nodes: nodeCount)
        await withTaskGroup(of: Void.self) { group in
            for node in 0..<nodeCount {
                for _ in 0..<max(1, concurrencyPerNode) {
                    group.addTask {
                        while let index = await queue.take(node: node) {
                            let outcome: Result<F.Output, any Error>
                            do {
                                outcome = .success(try await self.connection(node: node).run(function, inputs[index]))
                            } catch where Self.isNodeFailure(error) {
                                if let failed = queue.nodeLost(node, index: index, error: error, retry: F.isIdempotent) {
                                    for (index, error) in failed { onOutcome(index, .failure(error)) }
                                }
                                return
                            } catch {
                                outcome = .failure(error)
                            }
                            queue.finish(index, outcome, stopping: stopOnError)
                            onOutcome(index, outcome)
                        }
                    }
                }
            }
        }
        return queue.outcomes
    }
}

/// What `WorkQueue.take` found: an input, nothing more, or inputs that may come back.
enum TakeAnswer { case input(Int), done, wait }

/// The inputs of one map: which are next, which run where, and their outcomes.
final class WorkQueue<Output: Sendable>: Sendable {
    private struct State {
        var next = 0
        var retries: [Int] = []
        var running: [Int: Int] = [:]  // input → node
        var outcomes: [Result<Output, any Error>?]
        var lostNodes: Set<Int> = []
        var stopped = false
        let nodes: Int
    }
    private let state: Mutex<State>

    init(count: Int, nodes: Int) {
        state = Mutex(State(outcomes: Array(repeating: nil, count: count), nodes: nodes))
    }

    var outcomes: [Result<Output, any Error>?] { state.withLock { $0.outcomes } }

    /// The next input for `node`, or nil when there is none left for it. Waits while inputs
    /// still run elsewhere and could come back (their node lost).
    func take(node: Int) async -> Int? {
        while true {
            let answer: TakeAnswer = state.withLock { state in
                if state.stopped || state.lostNodes.contains(node) || Task.isCancelled { return .done }
                if let retry = state.retries.popLast() {
                    state.running[retry] = node
                    return .input(retry)
                }
                if state.next < state.outcomes.count {
                    defer { state.next += 1 }
                    state.running[state.next] = node
                    return .input(state.next)
                }
                return state.running.isEmpty ? .done : .wait
            }
            switch answer {
            case .input(let index): return index
            case .done: return nil
            case .wait: try? await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    func finish(_ index: Int, _ outcome: Result<Output, any Error>, stopping: Bool) {
        state.withLock { state in
            state.running[index] = nil
            state.outcomes[index] = outcome
            if stopping, case .failure = outcome { state.stopped = true }
        }
    }

    /// `node` was lost while running `index`: with `retry`, the input goes back in the queue
    /// for the other nodes, unless none is left; otherwise it fails with `error`. Returns the
    /// inputs that failed for good.
    func nodeLost(_ node: Int, index: Int, error: any Error, retry: Bool) -> [(Int, any Error)]? {
        state.withLock { state in
            state.lostNodes.insert(node)
            state.running[index] = nil
            var failed: [(Int, any Error)] = []
            if retry && state.lostNodes.count < state.nodes {
                state.retries.append(index)
            } else {
                state.outcomes[index] = .failure(error)
                failed.append((index, error))
            }
            if state.lostNodes.count == state.nodes {
                // No node is left: what waits fails with the last node's error.
                for waiting in state.retries {
                    state.outcomes[waiting] = .failure(error)
                    failed.append((waiting, error))
                }
                state.retries = []
                while state.next < state.outcomes.count {
                    state.outcomes[state.next] = .failure(error)
                    failed.append((state.next, error))
                    state.next += 1
                }
            }
            return failed
        }
    }
}
