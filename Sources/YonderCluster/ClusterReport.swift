import Foundation
public import Yonder
import YonderAWS
import YonderSSH

/// What `Cluster.report` found on each node of a recorded cluster: for `yonder status NAME`.
public struct ClusterReport: Codable, Sendable {
    /// The cluster's name.
    public var name: String
    /// Its provider.
    public var provider: ClusterSpec.Provider
    /// Its image.
    public var image: String?
    /// One entry per node, in order.
    public var nodes: [NodeReport]

    /// What `yonder status` reports about one node.
    public struct NodeReport: Codable, Sendable {
        /// The node's index.
        public var index: Int
        /// `user@host:port` of its SSH server.
        public var address: String
        /// The container's name (for an agent on the node itself, its folder's).
        public var container: String
        /// Whether the agent runs on the node itself (the spec has no image).
        public var onHost: Bool
        /// Docker's state of the container (`running`, `exited`, …), `missing`, or
        /// `unreachable` when the node could not be reached; for an agent on the node itself
        /// (no image), `running`, `exited` or `missing`.
        public var containerState: String
        /// The agent's version, when it answered.
        public var agentVersion: String?
        /// The agent's build (content hash of its executable), when it answered.
        public var agentBuild: String?
        /// The agent's process id, when it answered.
        public var agentPID: Int?
        /// Seconds since the agent started, when it answered.
        public var agentUptime: Double?
        /// The live objects in the agent.
        public var objects: [ObjectReference]
        /// What went wrong reaching the node or its agent.
        public var problem: String?
        /// For `aws` nodes: the instance as EC2 reports it, e.g. `i-0abc (g5.xlarge, spot, running)`.
        public var instance: String?
        /// The spec's autostop, e.g. `30m idle, then stop`; nil without one.
        public var autostop: String?
        /// Seconds since the node's last activity, as its autostop watcher last saw it.
        public var idleSeconds: Double?
        /// Whether the autostop watcher runs on the node (nil without autostop).
        public var autostopWatching: Bool?
    }
}

extension Cluster {
    /// Looks at every node of the recorded cluster `name`: the container's state over SSH, and
    /// the agent's build, uptime and objects through its tunnel. A node that cannot be reached
    /// is reported as such, with the reason; this never throws for one node's trouble.
    public static func report(_ name: String) async throws -> ClusterReport {
        let state = try ClusterState.load(name)
        var nodes: [ClusterReport.NodeReport] = []
        let instances = state.spec.provider == .aws ? await AWSProvider(spec: state.spec, environment: ProcessInfo.processInfo.environment).instances(state.nodes.compactMap(\.instanceID)) : [:]
        for (index, node) in state.nodes.enumerated() {
            var entry = ClusterReport.NodeReport(
                index: index, address: "\(node.user)@\(node.host):\(node.port)", container: node.container, onHost: node.isOnHost,
                containerState: "unreachable", objects: [])
            entry.instance = node.instanceID.map { instances[$0].map(AWSProvider.describe) ?? "\($0) (not found in EC2)" }
            entry.autostop = state.spec.autostop?.description
            // A stopped or terminated instance has no sshd to ask.
            if let id = node.instanceID, let instance = instances[id], instance.instanceState.name != "running" {
                let stateName = instance.instanceState.name
                entry.containerState = "instance \(stateName)"
                entry.problem = ["stopped", "stopping"].contains(stateName)
                    ? "its instance \(id) is \(stateName)\(entry.autostop.map { " (its autostop: \($0))" } ?? ""); run `yonder up \(name)` to start it again"
                    : "its instance \(id) is \(stateName); run `yonder up \(name)` to make the node again, or `yonder down \(name)`"
                nodes.append(entry)
                continue
            }
            do {
                let session = try await NodeEndpoint(node).connect()
                do {
                    try await inspect(node, cluster: name, index: index, over: session, into: &entry)
                } catch {
                    entry.problem = "the agent does not answer: \(error); run `yonder up \(name)` to start it again"
                }
                await session.close()
            } catch {
                entry.problem = "the node cannot be reached: \(error); "
                    + (state.spec.provider == .local
                        ? "run `yonder up \(name)` to start its sshd again"
                        : "check the machine and its sshd, then run `yonder status \(name)` again (`yonder down \(name) --forget` forgets it)")
            }
            nodes.append(entry)
        }
        let image = state.spec.image ?? state.spec.imageBuild.map { "built from \($0.context)" }
        return ClusterReport(name: name, provider: state.spec.provider, image: image, nodes: nodes)
    }

    private static func inspect(
        _ node: ClusterState.NodeState, cluster: String, index: Int, over session: SSHSession, into entry: inout ClusterReport.NodeReport
    ) async throws {
        let autostop = entry.autostop != nil
        let inspected = try await session.run(
            "printf 'yonder-state %s\\n' \"$(\(NodeCommands.state(node.container, onHost: node.isOnHost)))\"" + (autostop ? "\n" + AutostopWatcher.status(node.container) : ""))
        entry.containerState = AgentEndpoint.field("yonder-state", in: inspected.stdoutText) ?? "unknown"
        if autostop, let (idle, watching) = AutostopWatcher.parseStatus(inspected.stdoutText) {
            entry.idleSeconds = idle
            entry.autostopWatching = watching
        } else if autostop {
            entry.autostopWatching = false
        }
        guard entry.containerState == "running" else {
            let stopped = autostop && entry.containerState != "missing" ? " (its autostop: \(entry.autostop ?? ""))" : ""
            entry.problem = "the \(node.isOnHost ? "agent" : "container") is \(entry.containerState)\(stopped); run `yonder up \(cluster)` to bring it back"
            return
        }
        let connection = try await connectAgent(cluster: cluster, index: index, node: node, over: session, deadline: .seconds(5)).0
        do {
            let info = try await connection.info()
            entry.agentVersion = info.version
            entry.agentBuild = info.build
            entry.agentPID = info.pid
            entry.agentUptime = info.uptime
            entry.objects = info.objects
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }
}
