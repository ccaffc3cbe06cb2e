import Foundation
public import Yonder

/// One job of a cluster: the same id on every node, one record per node.
public struct ClusterJob: Sendable, Hashable {
    /// The job's id, the same on every node.
    public var id: Int
    /// The job on each node that has it, by rank.
    public var nodes: [Int: JobInfo]

    /// How the job stands as a whole: running while any node runs it; else failed, lost or
    /// cancelled if any node's was (in that order); else succeeded.
    public var state: JobInfo.State {
        let states = Set(nodes.values.map(\.state))
        for state in [JobInfo.State.running, .failed, .lost, .cancelled] where states.contains(state) { return state }
        return .succeeded
    }

    /// When the first node started it.
    public var started: Double { nodes.values.map(\.started).min() ?? 0 }

    /// When the last node ended it, once all have.
    public var ended: Double? {
        let ends = nodes.values.map(\.ended)
        return ends.contains(nil) ? nil : ends.compactMap { $0 }.max()
    }

    /// The status of the lowest-ranked node whose job did not succeed, or nil if none failed.
    public var firstFailure: (node: Int, job: JobInfo)? {
        nodes.sorted { $0.key < $1.key }.first { $0.value.state != .succeeded && $0.value.state != .running }.map { ($0.key, $0.value) }
    }
}

/// Jobs: `run` started on every node with one id, that goes on whether or not the client
/// stays (`yonder launch --detach`, `yonder jobs`, `yonder logs --job`, `yonder cancel`).
extension Cluster {
    /// Starts `script` with `/bin/sh -c` as a job on every node, with the task environment
    /// (``taskEnvironment(rank:addresses:)``) and `YONDER_JOB_ID`, in the workdir if the spec
    /// has one. Returns the job's id, the same on every node.
    ///
    /// The id is one more than any the nodes hold; the head node takes it first (of two
    /// launches at once, one gets it and the other the next). If a node cannot start it, the
    /// nodes that did are stopped and the error names the node.
    public func startJob(_ script: String) async throws -> Int {
        let addresses = nodeAddresses
        let known = try await withThrowingTaskGroup(of: Int.self) { group in
            for rank in 0..<nodeCount {
                group.addTask { try await self.connection(node: rank).jobs().map(\.id).max() ?? 0 }
            }
            return try await group.reduce(0, max)
        }
        let command = ["/bin/sh", "-c", script]
        let head = try await connection(node: 0)
        var id = known + 1
        while true {
            do {
                _ = try await head.startJob(command, environment: taskEnvironment(rank: 0, addresses: addresses), workingDirectory: taskFolder(0), id: id)
                break
            } catch let error as YonderError where error.code == .invalidArguments && error.message.contains("exists already") && id < known + 1000 {
                id += 1
            }
        }
        let taken = id
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for rank in 1..<max(1, nodeCount) {
                    group.addTask {
                        do {
                            _ = try await self.connection(node: rank).startJob(
                                command, environment: self.taskEnvironment(rank: rank, addresses: addresses), workingDirectory: self.taskFolder(rank), id: taken)
                        } catch {
                            throw ClusterError(.taskFailed, "node \(rank): cannot start job \(taken): \(error)")
                        }
                    }
                }
                try await group.waitForAll()
            }
        } catch {
            _ = try? await cancelJob(taken)
            throw error
        }
        return taken
    }

    /// Every job of the cluster, oldest first. A node that cannot be reached is an error.
    public func jobs() async throws -> [ClusterJob] {
        let perNode = try await withThrowingTaskGroup(of: (Int, [JobInfo]).self) { group in
            for rank in 0..<nodeCount {
                group.addTask { (rank, try await self.connection(node: rank).jobs()) }
            }
            return try await group.reduce(into: [(Int, [JobInfo])]()) { $0.append($1) }
        }
        var byID: [Int: ClusterJob] = [:]
        for (rank, jobs) in perNode {
            for job in jobs { byID[job.id, default: ClusterJob(id: job.id, nodes: [:])].nodes[rank] = job }
        }
        return byID.values.sorted { $0.id < $1.id }
    }

    /// Passes each line of job `id`'s output on every node that has it (or on `node` alone)
    /// to `onLine` (node, line), from the start; with `follow`, until the job has ended there.
    /// Returns the job. Cancelling the calling task stops the reading, not the job.
    public func jobOutput(
        _ id: Int, follow: Bool, node: Int? = nil, onLine: @escaping @Sendable (_ node: Int, _ line: String) -> Void
    ) async throws -> ClusterJob {
        if let node { _ = try state.node(node) }
        return try await onEveryNode(job: id, only: node) { rank, connection in
            var lines = LineSplitter()
            for try await event in connection.jobOutput(id, follow: follow) {
                switch event {
                case .output(let bytes):
                    for line in lines.lines(in: bytes) { onLine(rank, line) }
                case .end(let job, _):
                    lines.rest().map { onLine(rank, $0) }
                    return job
                }
            }
            throw ClusterError(.agentFailed, "node \(rank): the output of job \(id) ended without its state")
        }
    }

    /// Stops job `id` on every node that runs it, and returns it once it has ended there.
    public func cancelJob(_ id: Int) async throws -> ClusterJob {
        try await onEveryNode(job: id) { _, connection in try await connection.cancelJob(id) }
    }

    /// Runs `body` for job `id` on every node at once and gathers what each returns; a node
    /// without that job is left out, and none having it is ``ClusterError/Code/unknownJob``.
    private func onEveryNode(
        job id: Int, only: Int? = nil, _ body: @escaping @Sendable (Int, Connection) async throws -> JobInfo
    ) async throws -> ClusterJob {
        let job = try await withThrowingTaskGroup(of: (Int, JobInfo?).self) { group in
            for rank in only.map({ [$0] }) ?? Array(0..<nodeCount) {
                group.addTask {
                    do {
                        return (rank, try await body(rank, try await self.connection(node: rank)))
                    } catch let error as YonderError where error.code == .invalidArguments && error.message.contains("no job \(id)") {
                        return (rank, nil)
                    }
                }
            }
            var job = ClusterJob(id: id, nodes: [:])
            for try await (rank, info) in group {
                if let info { job.nodes[rank] = info }
            }
            return job
        }
        guard !job.nodes.isEmpty else { throw noJob(id) }
        return job
    }

    private func noJob(_ id: Int) -> ClusterError {
        ClusterError(.unknownJob, "\(name) has no job \(id); yonder jobs \(name) lists its jobs")
    }
}
