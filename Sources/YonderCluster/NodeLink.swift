import Foundation
import Yonder
import YonderSSH

/// One node of a cluster as this process reaches it: an SSH session and a connection to the
/// agent through a tunnel on it. When the connection is lost, the next `connection()` makes a
/// new session and connection, with backoff, within `reconnectDeadline`; calls that were in
/// flight have already failed with `connectionLost` (never retried here).
actor NodeLink {
    let index: Int
    let cluster: String
    private(set) var node: ClusterState.NodeState
    private(set) var session: SSHSession
    private(set) var current: Connection
    private let progress: @Sendable (ClusterProgress) -> Void
    /// How long a reconnection may take before it gives up with an error.
    static let reconnectDeadline: Duration = .seconds(30)

    init(index: Int, cluster: String, node: ClusterState.NodeState, session: SSHSession, connection: Connection,
         progress: @escaping @Sendable (ClusterProgress) -> Void) {
        self.index = index
        self.cluster = cluster
        self.node = node
        self.session = session
        self.current = connection
        self.progress = progress
    }

    /// The reconnection under way, which every caller that finds the connection lost waits
    /// for: an actor method can be entered again while it waits, and two reconnections would
    /// make two sessions.
    private var reconnecting: Task<Void, any Error>?

    /// The live connection, reconnecting first when it was lost.
    func connection() async throws -> Connection {
        if !current.isClosed { return current }
        if let reconnecting {
            try await reconnecting.value
            return current
        }
        let attempt = Task { try await self.reconnect() }
        reconnecting = attempt
        defer { reconnecting = nil }
        try await attempt.value
        return current
    }

    func close() async {
        if let reconnecting { _ = try? await reconnecting.value }
        ClusterState.recordObjects(cluster: cluster, node: index, instance: current.agent.instance, names: current.objectNames)
        await current.close()
        await session.close()
    }

    private func reconnect() async throws {
        let start = ContinuousClock.now
        let lostNames = Array(Set(current.objectNames).union(node.namedObjects ?? [])).sorted()
        ClusterState.recordObjects(cluster: cluster, node: index, instance: current.agent.instance, names: current.objectNames)
        progress(ClusterProgress(node: index, step: "reconnect", detail: "the connection to the agent on node \(index) was lost; reconnecting"))
        await session.close()
        var delay: Duration = .milliseconds(100)
        var attempts = 0
        var lastError: any Error = ClusterError(.agentFailed, "no attempt made")
        while true {
            attempts += 1
            do {
                let fresh = try await NodeEndpoint(node).connect()
                do {
                    let (connection, restarted) = try await Cluster.connectAgent(
                        cluster: cluster, index: index, node: node, over: fresh, progress: progress, lostNames: lostNames)
                    session = fresh
                    current = connection
                    node.saw(instance: connection.agent.instance)
                    let restartNote = restarted ? " (the agent had restarted)" : ""
                    progress(ClusterProgress(node: index, step: "reconnect", detail: "reconnected to the agent on node \(index) after \(attempts) attempt(s)\(restartNote)", elapsed: ContinuousClock.now - start))
                    return
                } catch {
                    await fresh.close()
                    throw error
                }
            } catch {
                lastError = error
                if !Self.worthRetrying(error) { throw error }
            }
            if ContinuousClock.now - start + delay > Self.reconnectDeadline {
                throw ClusterError(.agentFailed, "lost the connection to node \(index) of cluster \(cluster) (\(node.host):\(node.port)) and could not reconnect within \(Self.reconnectDeadline) (\(attempts) attempts); last error: \(lastError). Check that the node is up (`yonder status \(cluster)`), then `yonder up \(cluster)` if it is not")
            }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }

    /// Errors a later attempt cannot fix are thrown at once: a changed host key, refused
    /// credentials, a container removed outside Yonder.
    static func worthRetrying(_ error: any Error) -> Bool {
        if let error = error as? SSHError {
            return ![SSHError.Code.hostKeyChanged, .hostKeyUnknown, .authenticationFailed].contains(error.code)
        }
        if let error = error as? ClusterError { return error.code != .agentGone }
        return true
    }
}

extension Cluster {
    /// Connects to the agent of `node` through a tunnel on `session`. It reads the agent's
    /// current port and token from the node (never a cached copy), starts a container that was
    /// stopped, and waits out a restart; a stale port that something else took is refused by
    /// the handshake and retried until the agent has written its new one. Returns the
    /// connection and whether the agent restarted since it was last seen (then `progress`
    /// says so, once, with the objects that are gone).
    static func connectAgent(
        cluster: String, index: Int, node: ClusterState.NodeState, over session: SSHSession,
        deadline: Duration = .seconds(15), progress: @escaping @Sendable (ClusterProgress) -> Void = { _ in },
        lostNames: [String]? = nil
    ) async throws -> (Connection, restarted: Bool) {
        let lostNames = lostNames ?? node.namedObjects ?? []
        let start = ContinuousClock.now
        let place = "node \(index) of cluster \(cluster) (\(session.configuration.destination))"
        let what = node.isOnHost ? "the agent" : "the agent in \(node.container)"
        var startedIt = false
        var problem = "it has not written its port yet"
        while true {
            let found = try await session.run(NodeCommands.discovery(node.container, onHost: node.isOnHost), timeout: .seconds(20))
            let state = AgentEndpoint.field("yonder-state", in: found.stdoutText) ?? "unknown"
            switch state {
            case "missing":
                throw ClusterError(.agentGone, "\(place): \(node.isOnHost ? "the agent's folder" : "the container \(node.container)") is gone (removed outside Yonder?); run `yonder up \(cluster)` to make it again")
            case "running":
                if let endpoint = AgentEndpoint.parse(found.stdoutText) {
                    do {
                        let tunnel = try await session.openTunnel(host: "127.0.0.1", port: endpoint.port)
                        let connection = try await Connection.open(over: tunnel, token: endpoint.token, endpoint: "\(what) on \(session.configuration.destination)")
                        let restarted = node.agentInstance != nil && connection.agent.instance != node.agentInstance
                        if restarted {
                            let names = lostNames.isEmpty ? "" : "; the named objects it held are gone: \(lostNames.joined(separator: ", "))"
                            progress(ClusterProgress(node: index, step: "restarted", detail: "\(what) on node \(index) restarted since it was last seen; every object it held is gone\(names)"))
                        }
                        ClusterState.recordAgent(cluster: cluster, node: index, port: endpoint.port, instance: connection.agent.instance)
                        return (connection, restarted)
                    } catch let error as YonderError where error.code == .agentNotVerified {
                        problem = "what listens on its last port \(endpoint.port) is not the agent"
                    } catch let error as SSHError where error.code == .channelFailed {
                        problem = "nothing listens on its last port \(endpoint.port) (it may be restarting)"
                    }
                }
            case "restarting":
                problem = "Docker is restarting it"
            default:
                if node.isOnHost {
                    throw ClusterError(.agentFailed, "\(place): the agent is not running (\(state)); run `yonder up \(cluster)` to start it again")
                }
                guard !startedIt else {
                    problem = "it is \(state) after a start"
                    break
                }
                startedIt = true
                let started = try await session.run("docker start \(shellQuote(node.container)) && { \(AutostopWatcher.ensure(node.container)); }", timeout: .seconds(60))
                guard started.status == .exited(0) else {
                    throw ClusterError(.agentFailed, "\(place): \(node.container) is \(state) and cannot be started: \(started.stderrText.trimmingCharacters(in: .whitespacesAndNewlines)); see `yonder logs \(cluster)`, or run `yonder up \(cluster)`")
                }
                progress(ClusterProgress(node: index, step: "start", detail: "\(node.container) on node \(index) was \(state); started it again"))
            }
            if ContinuousClock.now - start > deadline {
                throw ClusterError(.agentFailed, "\(place): \(what) does not answer within \(deadline): \(problem); see `yonder logs \(cluster)`, or run `yonder up \(cluster)` to start it again")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
