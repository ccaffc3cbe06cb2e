import Foundation
import Yonder
import YonderSSH

/// A step of `up` and how long it took, for the caller to print.
public struct ClusterProgress: Sendable, CustomStringConvertible {
    /// The node it concerns, or nil for the whole cluster.
    public var node: Int?
    /// What happened ("docker", "pull", "agent", …).
    public var step: String
    /// A sentence for people.
    public var detail: String
    /// How long the step took, once done.
    public var elapsed: Duration?
    /// How far a long step is, as (done, total): bytes of an upload, layers of a pull. Such
    /// events come often; a terminal shows them as a bar, a log can skip them.
    public var fraction: (done: Int64, total: Int64)?

    public init(node: Int?, step: String, detail: String, elapsed: Duration? = nil, fraction: (done: Int64, total: Int64)? = nil) {
        self.node = node
        self.step = step
        self.detail = detail
        self.elapsed = elapsed
        self.fraction = fraction
    }

    public var description: String {
        let prefix = node.map { "[node \($0)] " } ?? ""
        let time = elapsed.map { String(format: " (%.2f s)", Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18) } ?? ""
        return "\(prefix)\(step): \(detail)\(time)"
    }
}

/// Brings one node to a running container with a healthy agent, over its SSH session.
struct NodeBootstrap {
    let index: Int
    let session: SSHSession
    let spec: ClusterSpec
    let agentPath: String
    let agentBuild: String
    let credentials: RegistryCredentials?
    let report: @Sendable (ClusterProgress) -> Void
    /// A new session to the same node, for cleaning up after this one was lost.
    let reconnect: @Sendable () async throws -> SSHSession
    /// Shared by the nodes of one `up`, which run at once: uploads to one host take turns.
    let turns: Turns

    var container: String { "yonder-\(spec.name)-\(index)" }
    var node: String { "node \(index) (\(session.configuration.destination))" }

    /// What `up` found or made on the node.
    struct Outcome {
        var agentPort: Int
        var token: String
        /// Whether up made the container (or started the agent on the node): a later failure
        /// removes it.
        var createdContainer: Bool
    }

    func timed<T>(_ step: String, _ detail: String, _ body: () async throws -> T) async throws -> T {
        let start = ContinuousClock.now
        let value = try await body()
        report(ClusterProgress(node: index, step: step, detail: detail, elapsed: ContinuousClock.now - start))
        return value
    }

    func run(_ command: String, input: [UInt8]? = nil) async throws -> SSHCommandResult {
        try await session.run(command, input: input)
    }

    func bring() async throws -> Outcome {
        guard let image = spec.image else { return try await bringOnHost() }
        // One round trip: Docker's health and the container's state, token and port. Each
        // command on a node costs sshd about 80 ms to set up, so the warm path makes one.
        let probe = try await timed("docker", "checking Docker and \(container) on \(node)") { try await probeNode() }
        if let existing = try await reuse(probe) { return existing }

        // With credentials, the login lives in a private folder for the pull only (ImagePull.swift).
        try await timed("image", image) { try await ensureImage(image, credentials: credentials) }
        do {
            try await timed("container", "creating \(container)") { try await createContainer(image) }
            let token = Self.newToken()
            try await timed("agent", "installing the agent (build \(agentBuild))") { try await installAgent(token: token, home: probe.home) }
            let port = try await timed("start", "starting the agent") { try await startAgent() }
            return Outcome(agentPort: port, token: token, createdContainer: true)
        } catch {
            // Whatever stood under this name was to be replaced: remove it, even if the
            // connection was lost (a failed up leaves no container).
            await Self.remove(NodeCommands.removal(container, onHost: false), over: session, reconnect: reconnect)
            throw error
        }
    }

    /// Runs `removal` (see `NodeCommands.removal`) on the node, over a new session when
    /// `session` is gone; also when the task was cancelled (an interrupted `up` cleans up).
    static func remove(_ removal: String, over session: SSHSession, reconnect: @escaping @Sendable () async throws -> SSHSession) async {
        await uncancelled { await removeNow(removal, over: session, reconnect: reconnect) }
    }

    private static func removeNow(_ removal: String, over session: SSHSession, reconnect: () async throws -> SSHSession) async {
        if let result = try? await session.run(removal), result.status == .exited(0) || result.stderrText.contains("No such container") {
            return
        }
        guard let again = try? await reconnect() else { return }
        _ = try? await again.run(removal)
        await again.close()
    }

    // MARK: Steps

    /// What one command on the node found.
    struct Probe {
        /// The SSH user's home folder on the node.
        var home = ""
        var state: String?
        var build: String?
        var token: String?
        var port: Int?
    }

    func probeNode() async throws -> Probe {
        let c = container
        let result = try await run("""
            docker version --format '{{.Server.Version}}' >/dev/null || exit $?
            echo "home $HOME"
            state=$(docker inspect --format '{{.State.Status}} {{index .Config.Labels "yonder.build"}}' \(c) 2>/dev/null) || exit 0
            echo "state $state"
            echo "token $(docker cp \(c):/yonder/token - 2>/dev/null | tar -xO 2>/dev/null)"
            docker logs \(c) 2>/dev/null | grep '"event":"listening"' | tail -n 1 | sed 's/^/listening /'
            """)
        guard result.status == .exited(0) else {
            let reason = result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines)
            if result.status == .exited(127) || reason.contains("not found") {
                throw ClusterError(.dockerUnavailable, "\(node): docker is not installed; install Docker there (apt-get install docker.io)")
            }
            throw ClusterError(.dockerUnavailable, "\(node): cannot reach the Docker daemon as \(session.configuration.user): \(reason.isEmpty ? "\(result.status)" : reason); start dockerd or add the user to the docker group")
        }
        return Self.parseProbe(result.stdoutText)
    }

    /// Reads the probe's lines: `home H`, `state STATE BUILD`, `token T`, `listening JSON`.
    static func parseProbe(_ text: String) -> Probe {
        var probe = Probe()
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "state":
                let fields = parts[1].split(separator: " ").map(String.init)
                probe.state = fields.first
                probe.build = fields.count > 1 ? fields[1] : nil
            case "home": probe.home = parts[1]
            case "token": probe.token = parts[1].trimmingCharacters(in: .whitespaces)
            case "listening": probe.port = AgentListening(line: parts[1])?.port
            default: break
            }
        }
        return probe
    }

    func containerState() async throws -> String? {
        let result = try await run("docker inspect --format '{{.State.Status}} {{index .Config.Labels \"yonder.build\"}}' \(container)")
        guard result.status == .exited(0) else { return nil }
        return result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func createContainer(_ image: String) async throws {
        _ = try await run("docker rm -f \(container) >/dev/null 2>&1")
        var arguments = [
            "docker", "create", "--name", container,
            "--label", "yonder.cluster=\(spec.name)", "--label", "yonder.node=\(index)", "--label", "yonder.build=\(agentBuild)",
            "--network", "host", "--entrypoint", "/yonder/agent",
        ]
        if let shm = spec.resources.shmSize { arguments += ["--shm-size", shm] }
        if let cpus = spec.resources.cpus { arguments += ["--cpus", String(cpus)] }
        if let memory = spec.resources.memoryGB { arguments += ["--memory", "\(Int(memory * 1024))m"] }
        if let gpus = spec.resources.accelerators { arguments += ["--gpus", String(gpus.count)] }
        for variable in spec.agentEnvironment(rank: index) { arguments += ["--env", variable] }
        arguments += [image, "serve", "--host", "127.0.0.1", "--port", "0", "--token-file", "/yonder/token", "--build", agentBuild]
        let result = try await run(arguments.map(shellQuote).joined(separator: " "))
        guard result.status == .exited(0) else {
            throw ClusterError(.agentFailed, "\(node): cannot create the container \(container): \(result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// Uploads the agent once per build (by content hash), then copies it and a fresh token
    /// into the container. The token travels over SFTP into a 0600 file that is removed at once.
    func installAgent(token: String, home: String) async throws {
        let sftp = try await session.sftp()
        defer { Task { await sftp.close() } }
        let stored = try await uploadAgent(sftp, home: home)
        let staging = "\(home)/.yonder/staging/\(container)"
        try await sftp.makeDirectory("\(staging)/yonder", mode: 0o700)
        try await uploadToken(token, sftp, to: "\(staging)/yonder/token")
        let copy = try await run("""
            cp \(shellQuote(stored)) \(shellQuote(staging))/yonder/agent && \
            docker cp \(shellQuote(staging))/yonder \(container):/ ; status=$?; rm -rf \(shellQuote(staging)); exit $status
            """)
        guard copy.status == .exited(0) else {
            throw ClusterError(.agentFailed, "\(node): cannot copy the agent into \(container): \(copy.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// Uploads the agent to `~/.yonder/agents/BUILD` unless the node already holds that build;
    /// returns its path there.
    func uploadAgent(_ sftp: SFTPClient, home: String) async throws -> String {
        try await turns.with(session.configuration.host) { try await uploadAgentNow(sftp, home: home) }
    }

    private func uploadAgentNow(_ sftp: SFTPClient, home: String) async throws -> String {
        let agents = "\(home)/.yonder/agents"
        let stored = "\(agents)/\(agentBuild)"
        let size = fileSize(agentPath)
        if try await sftp.attributes(stored)?.size != size {
            report(ClusterProgress(node: index, step: "upload", detail: "uploading \(URL(fileURLWithPath: agentPath).lastPathComponent) (\(size / 1_000_000) MB)"))
            try await sftp.makeDirectory(agents, mode: 0o700)
            let start = ContinuousClock.now
            try await sftp.upload(from: agentPath, to: stored, mode: 0o755) { [report, index] sent, total in
                report(ClusterProgress(node: index, step: "upload", detail: "agent \(sent / 1_000_000)/\(total / 1_000_000) MB", fraction: (sent, total)))
            }
            report(ClusterProgress(node: index, step: "upload", detail: "uploaded the agent (\(size / 1_000_000) MB)", elapsed: ContinuousClock.now - start))
        }
        return stored
    }

    /// Writes the token into a 0600 file on the node over SFTP: never in argv or a log.
    func uploadToken(_ token: String, _ sftp: SFTPClient, to path: String) async throws {
        let tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-token-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: tokenFile.path, contents: Data(token.utf8), attributes: [.posixPermissions: 0o600])
        defer { try? FileManager.default.removeItem(at: tokenFile) }
        try await sftp.upload(from: tokenFile.path, to: path, mode: 0o600)
    }

    /// Starts the container (the agent is its main process) and reads the port from the
    /// agent's listening line.
    func startAgent() async throws -> Int {
        let before = try await listeningPorts().count
        let started = try await run("docker start \(container)")
        guard started.status == .exited(0) else {
            throw ClusterError(.agentFailed, "\(node): cannot start \(container): \(started.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return try await readPort(after: before)
    }

    /// The ports of the agent's listening lines in the container's log, oldest first (the
    /// log keeps the lines of earlier starts).
    func listeningPorts() async throws -> [Int] {
        let logs = try await run("docker logs \(container) 2>/dev/null").stdoutText
        return logs.split(separator: "\n").compactMap { AgentListening(line: $0)?.port }
    }

    /// Waits for a listening line beyond the first `after` ones.
    func readPort(after: Int) async throws -> Int {
        for _ in 0..<200 {
            let ports = try await listeningPorts()
            if ports.count > after, let port = ports.last { return port }
            if let state = try await containerState(), !state.hasPrefix("running") { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let logs = try await run("docker logs --tail 40 \(container) 2>&1").stdoutText
        throw ClusterError(.agentFailed, "\(node): the agent in \(container) did not start; its last output: \(logs)")
    }

    /// A running container of this build with an agent that prints its port: reused. A
    /// stopped one of this build is started again.
    func reuse(_ probe: Probe) async throws -> Outcome? {
        guard let state = probe.state else { return nil }
        guard probe.build == agentBuild, let token = probe.token, !token.isEmpty else {
            report(ClusterProgress(node: index, step: "container", detail: "\(container) runs another agent build; replacing it"))
            return nil
        }
        if state != "running" {
            report(ClusterProgress(node: index, step: "container", detail: "\(container) is \(state); starting it"))
            let port = try await startAgent()
            return Outcome(agentPort: port, token: token, createdContainer: false)
        }
        guard let port = probe.port else { return nil }
        report(ClusterProgress(node: index, step: "container", detail: "reusing \(container)"))
        return Outcome(agentPort: port, token: token, createdContainer: false)
    }

    static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    func fileSize(_ path: String) -> UInt64 {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? NSNumber)?.uint64Value ?? 0
    }
}

/// Quotes a word for a POSIX shell.
package func shellQuote(_ word: String) -> String {
    if !word.isEmpty, word.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:@,+".contains($0) }) { return word }
    return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}
