import Foundation
public import Yonder
import Crypto

/// Tasks as SkyPilot users write them: `setup` once per container, `run` on every node.
extension Cluster {
    /// The environment of `setup` and `run` on node `rank`: its rank, the node count and
    /// every node's address, in Yonder's names, SkyPilot's and PyTorch's, so that existing
    /// scripts run unchanged.
    public static func taskEnvironment(rank: Int, addresses: [String]) -> [String: String] {
        let head = addresses.first ?? "127.0.0.1"
        let list = addresses.joined(separator: "\n")
        return [
            "YONDER_NODE_RANK": String(rank), "YONDER_NUM_NODES": String(addresses.count),
            "YONDER_NODE_IPS": list, "YONDER_HEAD_IP": head,
            "SKYPILOT_NODE_RANK": String(rank), "SKYPILOT_NUM_NODES": String(addresses.count),
            "SKYPILOT_NODE_IPS": list, "MASTER_ADDR": head, "MASTER_PORT": "29500",
        ]
    }

    /// The task environment of node `rank` of this cluster, with `YONDER_WORKDIR` when the
    /// spec has a workdir.
    func taskEnvironment(rank: Int, addresses: [String]) -> [String: String] {
        var environment = Self.taskEnvironment(rank: rank, addresses: addresses)
        if state.spec.workdir != nil { environment["YONDER_WORKDIR"] = workdirPath(node: rank) }
        return environment
    }

    /// Where `setup` and `run` start on node `rank`: the workdir, if the spec has one.
    func taskFolder(_ rank: Int) -> String? {
        state.spec.workdir == nil ? nil : workdirPath(node: rank)
    }

    /// The nodes' addresses as the other nodes reach them, in rank order.
    public var nodeAddresses: [String] {
        state.nodes.map { $0.clusterAddress ?? $0.host }
    }

    /// Runs `script` with `/bin/sh -c` on every node at once, with ``taskEnvironment(rank:addresses:)``,
    /// passing each line of output to `onLine` as it comes (node, whether it is standard
    /// error, the line without its newline). Returns each node's status, in rank order.
    /// Cancelling the calling task stops the script on every node.
    public func runEverywhere(
        _ script: String, onLine: @escaping @Sendable (_ node: Int, _ isError: Bool, _ line: String) -> Void
    ) async throws -> [ExecStatus] {
        let addresses = nodeAddresses
        return try await withThrowingTaskGroup(of: (Int, ExecStatus).self) { group in
            for rank in 0..<nodeCount {
                group.addTask {
                    let connection = try await self.connection(node: rank)
                    let status = try await Self.stream(
                        connection.exec(["/bin/sh", "-c", script], environment: self.taskEnvironment(rank: rank, addresses: addresses), workingDirectory: self.taskFolder(rank))
                    ) { isError, line in onLine(rank, isError, line) }
                    return (rank, status)
                }
            }
            var statuses = [ExecStatus?](repeating: nil, count: nodeCount)
            for try await (rank, status) in group { statuses[rank] = status }
            return statuses.map { $0! }
        }
    }

    /// Reads `stream` line by line into `onLine`; returns the exit status.
    static func stream(_ stream: ExecStream, onLine: (_ isError: Bool, _ line: String) -> Void) async throws -> ExecStatus {
        var output = LineSplitter(), errors = LineSplitter()
        for try await event in stream {
            switch event {
            case .standardOutput(let bytes):
                for line in output.lines(in: bytes) { onLine(false, line) }
            case .standardError(let bytes):
                for line in errors.lines(in: bytes) { onLine(true, line) }
            case .exit(let status):
                output.rest().map { onLine(false, $0) }
                errors.rest().map { onLine(true, $0) }
                return status
            }
        }
        throw ClusterError(.agentFailed, "the command's output ended without an exit status")
    }

    /// Runs the spec's `setup` on every node whose container has not run this very setup yet
    /// (a marker in the container holds a hash of it), streaming its lines as progress.
    /// A failure names the node, the exit status and the last lines.
    func runSetup(_ setup: String, progress: @escaping @Sendable (ClusterProgress) -> Void) async throws {
        let hash = SHA256.hash(data: Data(setup.utf8)).prefix(8).hex
        let addresses = nodeAddresses
        try await withThrowingTaskGroup(of: Void.self) { group in
            for rank in 0..<nodeCount {
                let marker = state.nodes[rank].isOnHost ? "setup-done" : "/yonder/run/setup-done"
                group.addTask {
                    let connection = try await self.connection(node: rank)
                    let check = try await connection.exec(["/bin/sh", "-c", "read -r done < \(marker) && [ \"$done\" = \(hash) ]"]).collect()
                    if check.status.exitCode == 0 {
                        progress(ClusterProgress(node: rank, step: "setup", detail: "already done in this container (the setup is unchanged)"))
                        return
                    }
                    progress(ClusterProgress(node: rank, step: "setup", detail: "running the spec's setup"))
                    let start = ContinuousClock.now
                    var tail: [String] = []
                    let status: ExecStatus
                    do {
                        status = try await Self.stream(
                            connection.exec(["/bin/sh", "-c", setup], environment: self.taskEnvironment(rank: rank, addresses: addresses), workingDirectory: self.taskFolder(rank))
                        ) { _, line in
                            tail = Array((tail + [line]).suffix(20))
                            progress(ClusterProgress(node: rank, step: "setup", detail: line))
                        }
                    } catch let error as YonderError where error.code == .execFailed {
                        throw ClusterError(.taskFailed, "node \(rank): cannot run the setup: \(error.message) (the image needs /bin/sh)")
                    }
                    guard status.exitCode == 0 else {
                        let lines = tail
                        throw ClusterError(.taskFailed, "node \(rank): the setup failed (\(status)); its last lines:\n" + (lines.isEmpty ? "(no output)" : lines.joined(separator: "\n")))
                    }
                    _ = try await connection.exec(["/bin/sh", "-c", "echo \(hash) > \(marker)"]).collect()
                    progress(ClusterProgress(node: rank, step: "setup", detail: "done", elapsed: ContinuousClock.now - start))
                }
            }
            try await group.waitForAll()
        }
    }
}

/// Cuts a stream of bytes into lines, without their newlines; a line split between two
/// chunks (even inside a UTF-8 sequence) comes whole.
struct LineSplitter {
    private var pending: [UInt8] = []

    /// The lines that `bytes` completes.
    mutating func lines(in bytes: some Sequence<UInt8>) -> [String] {
        pending += bytes
        guard let last = pending.lastIndex(of: 10) else { return [] }
        let lines = pending[..<last].split(separator: 10, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        pending.removeSubrange(...last)
        return lines
    }

    /// What follows the last newline, if anything: call once the stream has ended.
    mutating func rest() -> String? {
        defer { pending = [] }
        return pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self)
    }
}
