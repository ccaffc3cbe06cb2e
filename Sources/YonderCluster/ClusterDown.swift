import Foundation
import YonderLocalServers
import YonderAWS
import YonderSSH

extension Cluster {
    /// Takes cluster `name` down node by node: removes each container (or stops each agent on
    /// its node) and checks that it is gone, stops a local node's sshd (only when the recorded
    /// pid is verified to be it) and removes its folder. A node that cannot be reached keeps
    /// its record: the state is rewritten with the nodes not yet removed, and the error says
    /// to run `down` again once the node answers, or with `forget`. With `forget`, such nodes
    /// are forgotten too, and returned as sentences saying what may still run there.
    static func takeDown(_ name: String, forget: Bool, progress: @escaping @Sendable (ClusterProgress) -> Void) async throws -> [String] {
        let lock = try ClusterLock.acquire(name, for: "taken down")
        defer { lock.release() }
        var state = try ClusterState.load(name)
        let provider = Providers.provider(for: state.spec)
        var kept: [ClusterState.NodeState] = []
        var problems: [String] = []
        var forgotten: [String] = []
        // On aws, terminating an instance removes all that ran on it: only running ones are
        // visited over SSH first (stopped by autostop or terminated by hand, the rest are not).
        let instances = state.spec.provider == .aws
            ? await AWSProvider(spec: state.spec, environment: ProcessInfo.processInfo.environment).instances(state.nodes.compactMap(\.instanceID)) : [:]
        for (position, node) in state.nodes.enumerated() {
            let index = node.index ?? position
            let start = ContinuousClock.now
            var endpoint = NodeEndpoint(node)
            if state.spec.provider == .local { endpoint.localFolder = LocalProvider.folder(cluster: name, node: index) }
            do {
                if let id = node.instanceID {
                    let instanceState = instances[id]?.instanceState.name ?? "unknown to EC2"
                    if instanceState == "running" {
                        do {
                            try await removeWhatRuns(on: node, endpoint: endpoint, cluster: name, provider: state.spec.provider)
                        } catch {
                            progress(ClusterProgress(node: index, step: "down", detail: "could not remove \(node.container) over SSH (\(error)); terminating instance \(id) removes it"))
                        }
                    } else {
                        progress(ClusterProgress(node: index, step: "down", detail: "instance \(id) is \(instanceState): nothing to remove over SSH"))
                    }
                } else {
                    try await removeWhatRuns(on: node, endpoint: endpoint, cluster: name, provider: state.spec.provider)
                }
                await provider.release(endpoint)
                if let folder = endpoint.localFolder, let pid = endpoint.sshdProcessID, LocalSSHServer.isRunning(processID: pid, folder: folder) {
                    throw ClusterError(.stateFailed, "its private sshd (pid \(pid)) still runs after SIGKILL")
                }
                removeEnterKey(cluster: name, node: index)
                progress(ClusterProgress(node: index, step: "down", detail: node.isOnHost ? "stopped the agent" : "removed \(node.container)", elapsed: ContinuousClock.now - start))
            } catch {
                let what = node.isOnHost ? "the agent in ~/\(NodeCommands.hostFolder(node.container))" : "the container \(node.container)"
                let reason = "node \(index) (\(node.user)@\(node.host):\(node.port)): \(error)"
                if forget {
                    await provider.release(endpoint)
                    removeEnterKey(cluster: name, node: index)
                    forgotten.append("\(reason); \(what) may still run there")
                    progress(ClusterProgress(node: index, step: "down", detail: "forgot the node; \(what) may still run there", elapsed: ContinuousClock.now - start))
                } else {
                    var record = node
                    record.index = index
                    kept.append(record)
                    problems.append("\(reason); \(what) may still run there")
                }
            }
        }
        guard kept.isEmpty else {
            state.nodes = kept
            try state.save()
            let nodes = kept.map { String($0.index ?? 0) }.joined(separator: ", ")
            throw ClusterError(.nodeUnreachable, "cluster \(name) is not down: \(problems.joined(separator: "; ")). Yonder still records node(s) \(nodes); run `yonder down \(name)` again once they answer, or `yonder down \(name) --forget` to forget them (what runs there is then left)")
        }
        try await provider.finishDown(state.spec, progress: progress)
        ClusterState.remove(name)
        // What `sshConfig` made beyond the nodes' keys: the pinned host keys, the ~/.ssh/config block.
        try? FileManager.default.removeItem(atPath: SSHConfigEntry.knownHostsPath(cluster: name))
        _ = try? SSHConfigFile.remove(cluster: name)
        return forgotten
    }

    /// Removes the container (or stops the agent) of `node` and the cluster's ssh-config
    /// lines there, in one command that then checks nothing of it is left; throws if anything is.
    private static func removeWhatRuns(on node: ClusterState.NodeState, endpoint: NodeEndpoint, cluster: String, provider kind: ClusterSpec.Provider) async throws {
        var endpoint = endpoint
        var temporary: LocalSSHServer?
        if kind == .local, let folder = endpoint.localFolder, !LocalSSHServer.isRunning(processID: endpoint.sshdProcessID ?? 0, folder: folder) {
            // A local node whose sshd died is still this machine: reach it through a new one,
            // stopped again at the end.
            (temporary, endpoint) = try LocalProvider.temporaryServer(folder: folder)
        }
        defer { temporary?.stop() }
        let session = try await endpoint.connect()
        let check = node.isOnHost
            ? "if [ -e \(NodeCommands.hostFolder(node.container)) ]; then echo \"~/\(NodeCommands.hostFolder(node.container)) is still there\" >&2; exit 3; fi"
            : """
            left=$(docker ps -aq --filter name=^/\(node.container)$) || { echo "cannot ask Docker whether \(node.container) is gone" >&2; exit 3; }
            if [ -n "$left" ]; then echo "\(node.container) is still there" >&2; exit 3; fi
            """
        let result: SSHCommandResult
        do {
            result = try await session.run("""
                { \(NodeCommands.removal(node.container, onHost: node.isOnHost)); } >/dev/null 2>&1
                \(SSHConfigEntry.removalCommand(cluster: cluster, provider: kind)) >/dev/null 2>&1
                \(check)
                exit 0
                """)
        } catch {
            await session.close()
            throw error
        }
        await session.close()
        guard result.status == .exited(0) else {
            throw ClusterError(.agentFailed, result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// Removes the key `sshConfig` made for node `node`.
    private static func removeEnterKey(cluster: String, node: Int) {
        let key = SSHConfigEntry.keyPath(cluster: cluster, node: node)
        try? FileManager.default.removeItem(atPath: key)
        try? FileManager.default.removeItem(atPath: key + ".pub")
    }
}
