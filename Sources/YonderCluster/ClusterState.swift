public import Foundation
import YonderSSH

#if canImport(Glibc)
import Glibc
#endif

/// What Yonder remembers of a cluster between processes, in `~/.yonder/clusters/NAME.json`
/// (mode 0600). It holds no secret: the agents' tokens stay on the nodes.
public struct ClusterState: Codable, Sendable, Equatable {
    /// The spec the cluster was brought up with.
    public var spec: ClusterSpec
    /// One entry per node, in order.
    public var nodes: [NodeState]
    /// When `up` last finished.
    public var updatedAt: Date

    /// One node: how to reach it over SSH, and what runs there.
    public struct NodeState: Codable, Sendable, Equatable {
        /// The SSH host.
        public var host: String
        /// The SSH port.
        public var port: Int
        /// The SSH user.
        public var user: String
        /// The private key to log in with.
        public var identityFile: String?
        /// The server's host key line, pinned (local nodes), or nil to check known_hosts.
        public var pinnedHostKey: String?
        /// Whether unknown host keys are recorded on first use.
        public var acceptNewHostKeys: Bool
        /// The command the node's SSH connection runs through, if any.
        public var proxyCommand: String?
        /// For `aws` nodes: the EC2 instance id.
        public var instanceID: String?
        /// The address the other nodes reach this one at (`YONDER_NODE_IPS`): 127.0.0.1 on
        /// `local`, the host on `ssh`, the private address on `aws`.
        public var clusterAddress: String?
        /// The container's name.
        public var container: String
        /// The agent's loopback port on the node when it was last seen. Only informative: a
        /// connect always reads the current port (and token) from the node.
        public var agentPort: Int
        /// The agent's instance when it was last seen; another one at connect means that it
        /// restarted and its objects are gone.
        public var agentInstance: String?
        /// Names of the objects this machine's processes created or looked up on that agent
        /// instance: what to report as gone when it restarts.
        public var namedObjects: [String]?
        /// The agent build (a hash of its executable).
        public var agentBuild: String
        /// For local nodes: the pid of the private sshd.
        public var sshdProcessID: Int32?
        /// True when the spec has no image and the agent runs on the node itself, as a
        /// process of the SSH user; `container` then names its folder `~/.yonder/run/NAME`.
        public var runsOnHost: Bool?

        /// The node's index in the cluster, recorded when a `down` that could not reach every
        /// node keeps only some of them; nil means its position in ``nodes``.
        public var index: Int?

        /// Records that the agent now runs as `instance`; the names of another instance's
        /// objects are dropped (they are gone, and were reported as such).
        mutating func saw(instance: String?) {
            if agentInstance != instance { namedObjects = nil }
            agentInstance = instance
        }

        /// Whether the agent runs on the node itself rather than in a container.
        public var isOnHost: Bool { runsOnHost == true }
    }

    /// Node `index`, or an error naming the nodes there are.
    public func node(_ index: Int) throws -> NodeState {
        guard nodes.indices.contains(index) else {
            throw ClusterError(.unknownNode, "cluster \(spec.name) has no node \(index); its nodes are 0 to \(nodes.count - 1)")
        }
        return nodes[index]
    }

    /// The folder Yonder keeps its state in: `$YONDER_HOME`, else `~/.yonder`.
    public static var home: URL {
        if let override = ProcessInfo.processInfo.environment["YONDER_HOME"] { return URL(fileURLWithPath: override) }
        return URL(fileURLWithPath: HostKeyVerifier.expandTilde("~/.yonder"))
    }

    static func file(for name: String) -> URL {
        home.appendingPathComponent("clusters").appendingPathComponent("\(name).json")
    }

    /// The names of the clusters with state here.
    public static func knownNames() -> [String] {
        let folder = home.appendingPathComponent("clusters")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// Reads the state of `name`; a missing one says which clusters exist.
    public static func load(_ name: String) throws -> ClusterState {
        try ClusterSpec.checkName(name)
        let url = file(for: name)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            let known = knownNames()
            throw ClusterError(.unknownCluster, "no cluster named \(name)" + (known.isEmpty ? "; none is up (yonder up SPEC.yaml)" : "; known clusters: \(known.joined(separator: ", "))"))
        }
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            return try decoder.decode(ClusterState.self, from: data)
        } catch {
            throw ClusterError(.stateFailed, "the state of cluster \(name) in \(url.path) cannot be read (\(error)); remove the file and run up again")
        }
    }

    /// Writes the state with mode 0600, atomically.
    func save() throws {
        let url = Self.file(for: spec.name)
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            try replaceFile(atPath: url.path, with: try encoder.encode(self), mode: 0o600)
        } catch {
            throw ClusterError(.stateFailed, "cannot write the state of cluster \(spec.name) to \(url.path): \(error)")
        }
    }

    /// Records what a connect found on node `index` (port and instance), if the cluster still
    /// has that node; best effort.
    static func recordAgent(cluster name: String, node index: Int, port: Int, instance: String?) {
        guard var state = try? load(name), state.nodes.indices.contains(index) else { return }
        guard state.nodes[index].agentPort != port || state.nodes[index].agentInstance != instance else { return }
        state.nodes[index].agentPort = port
        state.nodes[index].saw(instance: instance)
        try? state.save()
    }

    /// Adds `names` to what node `index`'s agent instance `instance` is known to hold; best
    /// effort, and only while that instance is the one recorded.
    static func recordObjects(cluster name: String, node index: Int, instance: String?, names: [String]) {
        guard !names.isEmpty, var state = try? load(name), state.nodes.indices.contains(index),
            state.nodes[index].agentInstance == instance
        else { return }
        let all = Set(state.nodes[index].namedObjects ?? []).union(names).sorted()
        guard all != state.nodes[index].namedObjects else { return }
        state.nodes[index].namedObjects = all
        try? state.save()
    }

    static func remove(_ name: String) {
        try? FileManager.default.removeItem(at: file(for: name))
    }
}

/// Writes `data` to `path` through a temporary file beside it and a rename, so that a reader
/// sees the old file or the new one, never half of one; the new file gets `mode`.
func replaceFile(atPath path: String, with data: Data, mode: Int) throws {
    let temporary = path + ".yonder-tmp"
    guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: mode]) else {
        throw ClusterError(.stateFailed, "cannot write \(temporary); check the folder's permissions")
    }
    if rename(temporary, path) != 0 {
        let reason = String(cString: strerror(errno))
        try? FileManager.default.removeItem(atPath: temporary)
        throw ClusterError(.stateFailed, "cannot replace \(path): \(reason)")
    }
}
