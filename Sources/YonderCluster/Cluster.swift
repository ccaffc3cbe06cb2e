public import Foundation
public import Yonder
import YonderLocalServers
public import YonderSSH

#if canImport(Glibc)
import Glibc
#endif

/// A running cluster: one SSH session per node, and a connection to the agent in each node's
/// container through a tunnel on that session.
///
/// ```swift
/// let cluster = try await Cluster.up(try ClusterSpec.load(from: "cluster.yaml")) { print($0) }
/// let sum = try await cluster.connection().run(Add.self, [1, 2, 3])
/// // … from another process:
/// let again = try await Cluster.attach("demo")
/// try await again.down()
/// ```
public final class Cluster: Sendable {
    /// What was recorded for the cluster when this process brought it up or attached.
    public let state: ClusterState
    private let links: [NodeLink]

    private init(state: ClusterState, links: [NodeLink]) {
        self.state = state
        self.links = links
    }

    /// The cluster's name.
    public var name: String { state.spec.name }
    /// How many nodes it has.
    public var nodeCount: Int { links.count }

    /// The connection to the agent on node `node`. When the last one was lost (the node's
    /// network dropped, the agent restarted), this makes a new one first, with backoff, for
    /// up to 30 seconds, then fails with an error that says what to check. Calls that were in
    /// flight on the lost connection have already failed with `connectionLost`; they are never
    /// repeated behind the caller's back. Objects are proxies of one connection: look a named
    /// object up again on the new one.
    public func connection(node: Int = 0) async throws -> Connection {
        _ = try state.node(node)
        return try await links[node].connection()
    }

    /// The SSH session to node `node` (to run commands on the node itself).
    public func session(node: Int = 0) async throws -> SSHSession {
        _ = try state.node(node)
        return await links[node].session
    }

    /// Closes the connections and sessions; the cluster keeps running.
    public func close() async {
        for link in links { await link.close() }
    }

    // MARK: Up

    /// Brings the cluster up, or reuses what already runs: on all nodes at once, SSH in, check
    /// Docker, log in to the registry, pull the image, run the container with the agent inside
    /// (or, without an image, the agent on the node itself), and connect to the agent through
    /// a tunnel. A failed `up` removes what it made, on every node.
    public static func up(
        _ spec: ClusterSpec, environment: [String: String] = ProcessInfo.processInfo.environment,
        progress: @escaping @Sendable (ClusterProgress) -> Void = { _ in }
    ) async throws -> Cluster {
        let started = ContinuousClock.now
        // A spec built in Swift is checked as a YAML one is: its name becomes file and
        // container names, its hosts and envs reach the nodes.
        try spec.validate()
        // What the nodes run: the spec, with the tag of the image it builds, if it builds one.
        let recorded = spec
        var tagged = spec
        var imageBuild: PreparedImageBuild?
        if let build = spec.imageBuild {
            let start = ContinuousClock.now
            let prepared = try PreparedImageBuild.prepare(build, cluster: spec.name)
            progress(ClusterProgress(node: nil, step: "build", detail: "context \(build.context): \(prepared.files) files, \(prepared.bytes / 1000) kB, image \(prepared.tag)", elapsed: ContinuousClock.now - start))
            tagged.image = prepared.tag
            imageBuild = prepared
        }
        let spec = tagged
        let builtImage = imageBuild
        defer { if let builtImage { try? FileManager.default.removeItem(atPath: builtImage.archive) } }
        let lock = try ClusterLock.acquire(spec.name, for: "brought up")
        defer { lock.release() }
        var located = spec
        if let product = spec.agentProduct {
            located.agent = try await product.build(environment: environment, progress: progress)
        }
        let agentPath = try AgentExecutable.locate(spec: located, environment: environment)
        let build = try AgentExecutable.build(of: agentPath)
        let credentials = try await RegistryCredentials.resolve(image: spec.image, environment: environment)
        let previous = try? ClusterState.load(spec.name)
        let provider = Providers.provider(for: spec, environment: environment)

        var endpoints: [NodeEndpoint] = []
        do {
            endpoints = try await provider.provision(spec, previous: previous, progress: progress)
        } catch {
            if previous == nil { ClusterState.remove(spec.name) }
            throw error
        }
        // The nodes come up at once, each over its own session; each cleans up after itself.
        let turns = Turns()
        let results = await withTaskGroup(of: (Int, Result<NodeUp, any Error>).self) { group in
            for (index, endpoint) in endpoints.enumerated() {
                group.addTask {
                    do {
                        let before = previous.flatMap { $0.nodes.indices.contains(index) ? $0.nodes[index] : nil }
                        return (index, .success(try await bringNode(
                            index, endpoint, spec: spec, agentPath: agentPath, build: build, credentials: credentials,
                            imageBuild: builtImage, turns: turns, before: before, progress: progress)))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            var results: [(Int, Result<NodeUp, any Error>)] = []
            for await result in group { results.append(result) }
            return results.sorted { $0.0 < $1.0 }.map(\.1)
        }
        let ups = results.compactMap { try? $0.get() }
        do {
            if let failure = results.first(where: { (try? $0.get()) == nil }) {
                _ = try failure.get()
            }
            // Interrupted once every node was up: undone all the same.
            try Task.checkCancellation()
            let state = ClusterState(spec: recorded, nodes: ups.map(\.node), updatedAt: Date())
            let links = ups.enumerated().map { index, up in
                NodeLink(index: index, cluster: spec.name, node: up.node, session: up.session, connection: up.connection, progress: progress)
            }
            let cluster = Cluster(state: state, links: links)
            // Every node is up, so each knows the others' addresses: the setup can run.
            try await cluster.syncFiles(progress: progress)
            if let setup = spec.setup { try await cluster.runSetup(setup, progress: progress) }
            try state.save()
            progress(ClusterProgress(node: nil, step: "up", detail: "cluster \(spec.name) is up with \(ups.count) node(s)", elapsed: ContinuousClock.now - started))
            return cluster
        } catch {
            for up in ups { await up.undo(onHost: spec.image == nil) }
            for endpoint in endpoints where endpoint.isNew { await provider.release(endpoint) }
            await provider.undoProvision(progress: progress)
            if previous == nil { ClusterState.remove(spec.name) }
            throw error
        }
    }

    /// One node brought up: its session, the connection to its agent, and its record.
    struct NodeUp: Sendable {
        let endpoint: NodeEndpoint
        let session: SSHSession
        let connection: Connection
        let node: ClusterState.NodeState
        let createdContainer: Bool

        /// Undoes it, when another node failed.
        func undo(onHost: Bool) async {
            await connection.close()
            if createdContainer {
                await NodeBootstrap.remove(NodeCommands.removal(node.container, onHost: onHost), over: session, reconnect: { [endpoint] in try await endpoint.connect() })
            }
            await session.close()
        }
    }

    /// SSH in, bootstrap, tunnel and hello for one node; on failure, removes what it made.
    private static func bringNode(
        _ index: Int, _ endpoint: NodeEndpoint, spec: ClusterSpec, agentPath: String, build: String,
        credentials: RegistryCredentials?, imageBuild: PreparedImageBuild?, turns: Turns, before: ClusterState.NodeState?,
        progress: @escaping @Sendable (ClusterProgress) -> Void
    ) async throws -> NodeUp {
        let session = try await endpoint.connect()
        let bootstrap = NodeBootstrap(
            index: index, session: session, spec: spec, agentPath: agentPath, agentBuild: build,
            credentials: credentials, imageBuild: imageBuild, report: progress, reconnect: { try await endpoint.connect() }, turns: turns)
        var outcome: NodeBootstrap.Outcome?
        do {
            do {
                outcome = try await bootstrap.bring()
                // Node 0 reused its container (no image step): the image is in the registry
                // from the up that made it.
                if index == 0 { imageBuild?.pushed?.open() }
            } catch {
                if index == 0 { imageBuild?.pushed?.fail("node 0 failed before its image was pushed: \(error)") }
                throw error
            }
            let outcome = outcome!
            try await bootstrap.installAutostop()
            let connectStart = ContinuousClock.now
            var node = ClusterState.NodeState(
                host: endpoint.host, port: endpoint.port, user: endpoint.user, identityFile: endpoint.identityFile,
                pinnedHostKey: endpoint.pinnedHostKey, acceptNewHostKeys: endpoint.acceptNewHostKeys,
                container: bootstrap.container, agentPort: outcome.endpoint.port, agentBuild: build,
                sshdProcessID: endpoint.sshdProcessID, runsOnHost: spec.image == nil ? true : nil)
            node.proxyCommand = endpoint.proxyCommand
            node.instanceID = endpoint.instanceID
            node.clusterAddress = endpoint.clusterAddress ?? endpoint.host
            let connection: Connection
            do {
                let tunnel = try await session.openTunnel(host: "127.0.0.1", port: outcome.endpoint.port)
                connection = try await Connection.open(over: tunnel, token: outcome.endpoint.token, endpoint: "the agent in \(bootstrap.container) on \(session.configuration.destination)")
            } catch {
                // What the probe read may be stale (the agent restarting): read it again.
                connection = try await connectAgent(cluster: spec.name, index: index, node: node, over: session, progress: progress).0
            }
            node.agentPort = connection.agent.instance == outcome.endpoint.instance ? outcome.endpoint.port : node.agentPort
            // The named objects of the agent that ran before: kept while it still runs, else
            // reported as gone (a new agent build, a new container), never silently dropped.
            if let before, before.container == node.container {
                node.agentInstance = before.agentInstance
                node.namedObjects = before.namedObjects
                if let names = before.namedObjects, !names.isEmpty, before.agentInstance != nil, before.agentInstance != connection.agent.instance {
                    progress(ClusterProgress(node: index, step: "restarted", detail: "the agent on node \(index) is a new one (a new build or container); the named objects the old one held are gone: \(names.joined(separator: ", "))"))
                }
            }
            node.saw(instance: connection.agent.instance)
            progress(ClusterProgress(node: index, step: "connect", detail: "agent \(connection.agent) on port \(node.agentPort)", elapsed: ContinuousClock.now - connectStart))
            return NodeUp(endpoint: endpoint, session: session, connection: connection, node: node, createdContainer: outcome.createdContainer)
        } catch {
            if outcome?.createdContainer == true {
                await NodeBootstrap.remove(NodeCommands.removal(bootstrap.container, onHost: spec.image == nil), over: session, reconnect: { try await endpoint.connect() })
            }
            await session.close()
            throw error
        }
    }

    // MARK: Attach and down

    /// Connects to a cluster another process brought up, by name.
    ///
    /// Each node's agent is found where it listens now (its port and token are read from the
    /// node, never from a cache); a container that was stopped is started again. When an
    /// agent restarted since it was last seen, `progress` says so once: its objects are gone.
    /// `agentTimeout` bounds the wait for each node's agent (a restart, a stopped container).
    public static func attach(
        _ name: String, agentTimeout: Duration = .seconds(15),
        progress: @escaping @Sendable (ClusterProgress) -> Void = { _ in }
    ) async throws -> Cluster {
        let state = try ClusterState.load(name)
        var links: [NodeLink] = []
        do {
            for (index, node) in state.nodes.enumerated() {
                let session: SSHSession
                do {
                    session = try await NodeEndpoint(node).connect()
                } catch {
                    throw ClusterError(.agentFailed, "cannot reach node \(index) of cluster \(name) (\(node.user)@\(node.host):\(node.port)): \(error). Check that the machine is up; run `yonder up \(name)` to bring it back")
                }
                do {
                    let (connection, _) = try await connectAgent(
                        cluster: name, index: index, node: node, over: session, deadline: agentTimeout, progress: progress)
                    var seen = node
                    seen.saw(instance: connection.agent.instance)
                    links.append(NodeLink(index: index, cluster: name, node: seen, session: session, connection: connection, progress: progress))
                } catch {
                    await session.close()
                    throw error
                }
            }
        } catch {
            for link in links { await link.close() }
            throw error
        }
        return Cluster(state: state, links: links)
    }

    /// An SSH session to a node of a recorded cluster, without connecting to its agent
    /// (what `yonder ssh` needs).
    public static func sshSession(to node: ClusterState.NodeState) async throws -> SSHSession {
        try await NodeEndpoint(node).connect()
    }

    /// Tears this cluster down: see ``down(_:forget:progress:)``.
    @discardableResult
    public func down(forget: Bool = false, progress: @escaping @Sendable (ClusterProgress) -> Void = { _ in }) async throws -> [String] {
        await close()
        return try await Self.down(name, forget: forget, progress: progress)
    }

    /// Removes the cluster's containers (or agents), stops its local sshd processes and
    /// forgets it, once it verified that nothing of it is left. A node that cannot be reached
    /// stays recorded, and the error says so: run `down` again once it answers. With `forget`
    /// such nodes are forgotten too; the returned sentences say what may still run where
    /// (empty when everything was verified gone). One `up` or `down` of a cluster at a time:
    /// another one in progress is a `busy` error.
    @discardableResult
    public static func down(_ name: String, forget: Bool = false, progress: @escaping @Sendable (ClusterProgress) -> Void = { _ in }) async throws -> [String] {
        try await takeDown(name, forget: forget, progress: progress)
    }
}
