import Crypto
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

    /// Makes an event; see the properties for what each part means.
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
    /// The image to build on the node, when the spec builds one (its tag is `spec.image`).
    let imageBuild: PreparedImageBuild?
    let report: @Sendable (ClusterProgress) -> Void
    /// A new session to the same node, for cleaning up after this one was lost.
    let reconnect: @Sendable () async throws -> SSHSession
    /// Shared by the nodes of one `up`, which run at once: uploads to one host take turns.
    let turns: Turns

    var container: String { "yonder-\(spec.name)-\(index)" }
    var node: String { "node \(index) (\(session.configuration.destination))" }

    /// What `up` found or made on the node.
    struct Outcome {
        /// Where the agent listens and its token, as it wrote them at its start.
        var endpoint: AgentEndpoint
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

    /// How long one command of `up` on a node may take (a pull streams and is not bound).
    static let commandTimeout: Duration = .seconds(120)

    func run(_ command: String, input: [UInt8]? = nil) async throws -> SSHCommandResult {
        try await session.run(command, input: input, timeout: Self.commandTimeout)
    }

    func bring() async throws -> Outcome {
        guard let image = spec.image else { return try await bringOnHost() }
        // One round trip: Docker's health and the container's state, token and port. Each
        // command on a node costs sshd about 80 ms to set up, so the warm path makes one.
        let probe = try await timed("docker", "checking Docker and \(container) on \(node)") { try await probeNode() }
        if let existing = try await reuse(probe) { return existing }
        if let gpus = spec.resources.accelerators {
            try await timed("gpu", "checking that containers can see \(gpus.count)× \(gpus.name)") { try await checkGPUs(gpus) }
        }

        // With credentials, the login lives in a private folder for the pull only (ImagePull.swift).
        if let imageBuild {
            try await ensureImage(built: imageBuild)
        } else {
            try await timed("image", image) { try await ensureImage(image, credentials: credentials) }
        }
        do {
            try await timed("container", "creating \(container)") { try await createContainer(image) }
            try await timed("agent", "installing the agent (build \(agentBuild))") { try await installAgent(home: probe.home) }
            let endpoint = try await timed("start", "starting the agent") { try await startAgent(after: nil) }
            return Outcome(endpoint: endpoint, createdContainer: true)
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
        /// The size of this agent build in the node's store, if it is there.
        var storedSize: UInt64?
        var state: String?
        var build: String?
        /// The image the container was made from.
        var image: String?
        /// Whether the container reads its agent's build id from a file, so that the agent
        /// can be swapped in place (containers made before that cannot).
        var swappable = false
        /// What the agent wrote at its last start, if it did.
        var endpoint: AgentEndpoint?
    }

    func probeNode() async throws -> Probe {
        let c = shellQuote(container)
        let result = try await run("""
            docker version --format '{{.Server.Version}}' >/dev/null || exit $?
            echo "home $HOME"
            echo "stored $(wc -c < "$HOME/.yonder/agents/\(agentBuild)" 2>/dev/null)"
            \(spec.autostop == nil ? AutostopWatcher.removal(container) : "")
            state=$(docker inspect --format '{{.State.Status}} {{index .Config.Labels "yonder.build"}} {{.Config.Image}} {{index .Config.Labels "yonder.swap"}}' \(c) 2>/dev/null) || exit 0
            echo "state $state"
            \(NodeCommands.endpoint(container, onHost: false))
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

    /// Before a GPU container is made: the node has a working NVIDIA driver with enough GPUs,
    /// and Docker can hand them to containers. A cluster whose containers could not see
    /// their GPUs is never started; the error names what is missing and how to add it.
    func checkGPUs(_ gpus: ClusterSpec.Accelerators) async throws {
        let result = try await run("""
            if ! command -v nvidia-smi >/dev/null 2>&1; then echo "driver missing"; exit 3; fi
            count=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU') || { echo "driver failing"; exit 3; }
            echo "gpus $count"
            if docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q nvidia || command -v nvidia-container-cli >/dev/null 2>&1; then
                echo "toolkit yes"
            else
                echo "toolkit missing"; exit 3
            fi
            """)
        let output = result.stdoutText
        let wanted = "\(gpus.count)× \(gpus.name)"
        if output.contains("driver missing") {
            throw ClusterError(.dockerUnavailable, "\(node): the spec asks for \(wanted), but the node has no NVIDIA driver (nvidia-smi is not installed); install the driver, or use a Deep Learning AMI, which has it")
        }
        if output.contains("driver failing") {
            throw ClusterError(.dockerUnavailable, "\(node): the spec asks for \(wanted), but nvidia-smi fails there: the NVIDIA driver is not working (a reboot after installing it, or a kernel without its module?)")
        }
        let count = output.split(separator: "\n").first { $0.hasPrefix("gpus ") }.flatMap { Int($0.dropFirst(5)) } ?? 0
        guard count >= gpus.count else {
            throw ClusterError(.dockerUnavailable, "\(node): the spec asks for \(wanted), but nvidia-smi sees \(count) GPU(s) there")
        }
        if output.contains("toolkit missing") || result.status != .exited(0) {
            throw ClusterError(.dockerUnavailable, "\(node): the node has \(count) GPU(s), but Docker cannot give them to containers: the NVIDIA container toolkit is missing; install nvidia-container-toolkit and run `nvidia-ctk runtime configure --runtime=docker`, then restart Docker")
        }
    }

    /// Reads the probe's lines: `home H`, `state STATE BUILD`, and the endpoint line.
    static func parseProbe(_ text: String) -> Probe {
        var probe = Probe()
        probe.endpoint = AgentEndpoint.parse(text)
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            switch parts[0] {
            case "state":
                let fields = parts[1].split(separator: " ").map(String.init)
                probe.state = fields.first
                probe.build = fields.count > 1 ? fields[1] : nil
                probe.image = fields.count > 2 ? fields[2] : nil
                probe.swappable = fields.count > 3 && fields[3] == "1"
            case "home": probe.home = parts[1]
            case "stored": probe.storedSize = UInt64(parts[1].trimmingCharacters(in: .whitespaces))
            default: break
            }
        }
        return probe
    }

    func createContainer(_ image: String) async throws {
        _ = try await run("docker rm -f \(shellQuote(container)) >/dev/null 2>&1")
        // The agent is the container's main process; Docker starts it again when it dies, and
        // after a reboot (a container stopped by hand is started again at the next connect).
        var arguments = [
            "docker", "create", "--name", container,
            "--label", "yonder.cluster=\(spec.name)", "--label", "yonder.node=\(index)", "--label", "yonder.build=\(agentBuild)",
            "--label", "yonder.swap=1", "--network", "host", "--entrypoint", "/yonder/agent", "--restart", "unless-stopped",
        ]
        if let shm = spec.resources.shmSize { arguments += ["--shm-size", shm] }
        if let cpus = spec.resources.cpus { arguments += ["--cpus", String(cpus)] }
        if let memory = spec.resources.memoryGB { arguments += ["--memory", "\(Int(memory * 1024))m"] }
        if let gpus = spec.resources.accelerators { arguments += ["--gpus", String(gpus.count)] }
        for variable in spec.agentEnvironment(rank: index) { arguments += ["--env", variable] }
        arguments += [image, "serve", "--host", "127.0.0.1", "--port", "0", "--new-token-file", AgentEndpoint.containerFile,
                      "--activity-file", AgentEndpoint.activityFile, "--jobs-dir", AgentEndpoint.jobsFolder,
                      "--build", agentBuild, "--build-file", AgentEndpoint.buildFile]
        let result = try await run(arguments.map(shellQuote).joined(separator: " "))
        guard result.status == .exited(0) else {
            throw ClusterError(.agentFailed, "\(node): cannot create the container \(container): \(result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// Uploads the agent once per build (by content hash), then copies it into the container
    /// as `/yonder/agent`, with `/yonder/run` for the file it writes at each start, both owned
    /// by the image's user so that an image with a non-root `USER` runs it as that user. The
    /// token is made by the agent itself at each start: nothing secret is uploaded.
    func installAgent(home: String) async throws {
        let sftp = try await session.sftp()
        defer { Task { await sftp.close() } }
        let stored = try await uploadAgent(sftp, home: home)
        let owner = try await imageUser()
        let staging = shellQuote("\(home)/.yonder/staging/\(container)")
        let copy = try await run("""
            rm -rf \(staging) && mkdir -p \(staging)/yonder/run && chmod 755 \(staging)/yonder && chmod 700 \(staging)/yonder/run && \
            cp \(shellQuote(stored)) \(staging)/yonder/agent && chmod 755 \(staging)/yonder/agent && \
            printf '%s\\n' \(agentBuild) > \(staging)/yonder/build && chmod 644 \(staging)/yonder/build && \
            tar -C \(staging) -c --numeric-owner --owner=\(owner.uid) --group=\(owner.gid) yonder | docker cp -a - \(shellQuote(container)):/ ; \
            status=$?; rm -rf \(staging); exit $status
            """)
        guard copy.status == .exited(0) else {
            throw ClusterError(.agentFailed, "\(node): cannot copy the agent into \(container): \(copy.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// The numeric user and group the container runs as: its image's `USER` (a name is looked
    /// up in the image's /etc/passwd and /etc/group), root when it names none.
    func imageUser() async throws -> (uid: Int, gid: Int) {
        let c = shellQuote(container)
        let result = try await run("""
            printf '\\nyonder-user %s\\n' "$(docker inspect --format '{{.Config.User}}' \(c))"
            docker cp \(c):/etc/passwd - 2>/dev/null | tar -xO 2>/dev/null | sed 's/^/yonder-passwd /'
            docker cp \(c):/etc/group - 2>/dev/null | tar -xO 2>/dev/null | sed 's/^/yonder-group /'
            """)
        let user = AgentEndpoint.field("yonder-user", in: result.stdoutText) ?? ""
        if let owner = Self.resolveUser(user, output: result.stdoutText) { return owner }
        throw ClusterError(.agentFailed, "\(node): the image's USER \"\(user)\" is not in its /etc/passwd or /etc/group; give the image a numeric USER (for example USER 1000:1000)")
    }

    /// Resolves a Docker `USER` value (`name`, `uid`, `name:group`, `uid:gid`, or empty) with
    /// the `yonder-passwd`/`yonder-group` lines of `output`.
    static func resolveUser(_ user: String, output: String) -> (uid: Int, gid: Int)? {
        func table(_ prefix: String) -> [[Substring]] {
            output.split(separator: "\n").filter { $0.hasPrefix(prefix + " ") }
                .map { $0.dropFirst(prefix.count + 1).split(separator: ":", omittingEmptySubsequences: false) }
        }
        let parts = user.split(separator: ":", maxSplits: 1).map(String.init)
        let name = parts.first ?? ""
        if name.isEmpty { return (0, 0) }
        var uid = Int(name), gid: Int?
        if uid == nil {
            guard let entry = table("yonder-passwd").first(where: { $0.count > 3 && $0[0] == name }) else { return nil }
            uid = Int(entry[2])
            gid = Int(entry[3])
        } else if let entry = table("yonder-passwd").first(where: { $0.count > 3 && Int($0[2]) == uid }) {
            gid = Int(entry[3])
        }
        if parts.count == 2 {
            gid = Int(parts[1]) ?? table("yonder-group").first(where: { $0.count > 2 && $0[0] == parts[1] }).flatMap { Int($0[2]) }
            if gid == nil { return nil }
        }
        guard let uid else { return nil }
        return (uid, gid ?? uid)
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
            _ = try await run(NodeCommands.staleUploadsRemoval(in: agents))
            let start = ContinuousClock.now
            try await sftp.upload(from: agentPath, to: stored, mode: 0o755) { [report, index] sent, total in
                report(ClusterProgress(node: index, step: "upload", detail: "agent \(sent / 1_000_000)/\(total / 1_000_000) MB", fraction: (sent, total)))
            }
            report(ClusterProgress(node: index, step: "upload", detail: "uploaded the agent (\(size / 1_000_000) MB)", elapsed: ContinuousClock.now - start))
        }
        return stored
    }

    /// Starts the container (the agent is its main process) and waits for the file the
    /// agent writes at its start; `previous` is the instance that was there before, if any.
    func startAgent(after previous: String?) async throws -> AgentEndpoint {
        let started = try await run("docker start \(shellQuote(container))")
        guard started.status == .exited(0) else {
            throw ClusterError(.agentFailed, "\(node): cannot start \(container): \(started.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return try await waitForEndpoint(after: previous)
    }

    /// Waits (up to `attempts` tenths of a second) until the agent has written an endpoint of
    /// an instance other than `previous`.
    func waitForEndpoint(after previous: String?, attempts: Int = 100) async throws -> AgentEndpoint {
        for _ in 0..<attempts {
            let found = try await run(NodeCommands.discovery(container, onHost: false)).stdoutText
            if let endpoint = AgentEndpoint.parse(found), endpoint.instance != previous { return endpoint }
            let state = AgentEndpoint.field("yonder-state", in: found) ?? "missing"
            if state != "running" && state != "restarting" && state != "created" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let logs = try await run("docker logs --tail 40 \(shellQuote(container)) 2>&1").stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
        throw ClusterError(.agentFailed, "\(node): the agent in \(container) did not start; its last output: \(logs.isEmpty ? "(nothing)" : logs)")
    }

    /// A running container of this build with an agent that prints its port: reused. A
    /// stopped one of this build is started again. One of this image with another agent build
    /// gets the new agent in place and is restarted, so its files (the workdir, what the
    /// setup installed) stay; one of another image is replaced.
    func reuse(_ probe: Probe) async throws -> Outcome? {
        guard let state = probe.state else { return nil }
        if let image = probe.image, let wanted = spec.image, image != wanted {
            report(ClusterProgress(node: index, step: "container", detail: "\(container) runs \(image), not \(wanted); replacing it"))
            return nil
        }
        let running = probe.swappable ? probe.endpoint?.build : probe.build
        guard let existing = probe.endpoint, running == agentBuild else {
            guard probe.swappable, let existing = probe.endpoint else {
                report(ClusterProgress(node: index, step: "container", detail: "\(container) runs another agent build; replacing it"))
                return nil
            }
            report(ClusterProgress(node: index, step: "container", detail: "\(container) runs agent build \(running ?? "unknown"); swapping in \(agentBuild) (the container and its files stay)"))
            let endpoint = try await timed("restart", "the new agent started in \(container)") {
                if state == "running", let swapped = try await swapThroughAgent(existing) { return swapped }
                return try await swapAgent(home: probe.home, stored: probe.storedSize == fileSize(agentPath), running: state == "running", previous: existing.instance)
            }
            return Outcome(endpoint: endpoint, createdContainer: false)
        }
        if state != "running" {
            report(ClusterProgress(node: index, step: "container", detail: "\(container) is \(state); starting it"))
            return Outcome(endpoint: try await startAgent(after: existing.instance), createdContainer: false)
        }
        report(ClusterProgress(node: index, step: "container", detail: "reusing \(container)"))
        return Outcome(endpoint: existing, createdContainer: false)
    }

    /// Swaps the new build in through the running agent (`yonder.swap`): the file travels
    /// through a tunnel on the session there is, the agent checks that it runs, installs it
    /// and executes it in place, keeping its port and token, so the new agent is reached at
    /// once. Nil when this agent cannot (a build from before `yonder.swap`, or no answer): the
    /// caller swaps over SSH instead. A build that does not run on the node is an error, and
    /// the old agent goes on.
    func swapThroughAgent(_ existing: AgentEndpoint) async throws -> AgentEndpoint? {
        let bytes: [UInt8]
        do {
            bytes = Array(try Data(contentsOf: URL(fileURLWithPath: agentPath)))
        } catch {
            throw ClusterError(.agentFailed, "cannot read the agent executable \(agentPath): \(error)")
        }
        let connection: Connection
        do {
            let tunnel = try await session.openTunnel(host: "127.0.0.1", port: existing.port)
            connection = try await Connection.open(over: tunnel, token: existing.token, endpoint: "the agent in \(container) on \(session.configuration.destination)")
        } catch {
            return nil
        }
        defer { Task { await connection.close() } }
        do {
            report(ClusterProgress(node: index, step: "upload", detail: "sending the agent (\(bytes.count / 1_000_000) MB) to the running agent"))
            try await connection.putFile(bytes, to: AgentEndpoint.stagedAgent, mode: 0o700)
            let instance = try await connection.swapAgent(stagedAt: AgentEndpoint.stagedAgent, build: agentBuild, sha256: SHA256.hash(data: bytes).hex)
            // An agent of this build stops accepting before it answers, so the next connection
            // reaches the new one. The running agent may be of an earlier build, which answers
            // first and stops accepting only as it says goodbye: a connection made before that
            // could still reach it and get a goodbye in the middle of a call (seen on a busy
            // machine). So the next step waits for the goodbye; connections made after it wait
            // in the socket's backlog for the new agent.
            let deadline = ContinuousClock.now + .seconds(10)
            while !connection.isClosed, !Task.isCancelled, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(5))
            }
            return AgentEndpoint(port: existing.port, token: existing.token, instance: instance, build: agentBuild)
        } catch let error as YonderError where error.code == .execFailed {
            throw ClusterError(.agentFailed, "\(node): \(error.message). Build the agent for Linux on the node's architecture (`uname -m` there), statically linked (-Xswiftc -static-executable)")
        } catch let error as YonderError where error.code == .unknownFunction || error.code == .unavailable {
            return nil
        } catch {
            report(ClusterProgress(node: index, step: "restart", detail: "the running agent did not take the new build (\(error)); swapping it over SSH"))
            return nil
        }
    }

    /// Puts the new agent and its build id into the container, in place of the old ones, and
    /// starts it, in one SSH command: the agent travels on its standard input when the node's
    /// store (`~/.yonder/agents/BUILD`) lacks it; a running agent gets SIGHUP and executes the
    /// new file itself (no container restart: the same pid 1); a stopped container is
    /// started; then the command waits for the new agent's file and prints it. An agent that
    /// does not answer SIGHUP within 5 s gets a container restart instead.
    func swapAgent(home: String, stored has: Bool, running: Bool, previous: String?) async throws -> AgentEndpoint {
        let c = shellQuote(container)
        let agents = shellQuote("\(home)/.yonder/agents"), stored = shellQuote("\(home)/.yonder/agents/\(agentBuild)")
        let staging = shellQuote("\(home)/.yonder/staging/\(container)")
        let size = fileSize(agentPath)
        if !has { report(ClusterProgress(node: index, step: "upload", detail: "sending the agent (\(size / 1_000_000) MB) with the swap")) }
        let start = ContinuousClock.now
        // Only the two files go in: /yonder and /yonder/run keep their owner (the image's user).
        let swapped = try await run("""
            \(has ? "" : "mkdir -p \(agents) && chmod 700 \(agents) && cat > \(stored).part && chmod 755 \(stored).part && mv -f \(stored).part \(stored) || exit 1")
            rm -rf \(staging) && mkdir -p \(staging)/yonder && \
            { ln -f \(stored) \(staging)/yonder/agent 2>/dev/null || cp \(stored) \(staging)/yonder/agent; } && \
            printf '%s\\n' \(agentBuild) > \(staging)/yonder/build && chmod 644 \(staging)/yonder/build && \
            tar -C \(staging) -c --numeric-owner --owner=0 --group=0 yonder/agent yonder/build | docker cp - \(c):/ ; \
            status=$?; rm -rf \(staging); [ $status = 0 ] || exit $status
            \(running ? "docker kill --signal HUP \(c) >/dev/null" : "docker start \(c) >/dev/null") || exit 1
            i=0
            while [ $i -lt 100 ]; do
              found=$(docker cp \(c):\(AgentEndpoint.containerFile) - 2>/dev/null | tar -xO 2>/dev/null)
              case "$found" in ""|*\(shellQuote(previous ?? "-"))*) ;; *) printf '\\n\(AgentEndpoint.marker)%s\\n' "$found"; exit 0 ;; esac
              sleep 0.05; i=$((i + 1))
            done
            exit 3
            """, input: has ? nil : Array(try Data(contentsOf: URL(fileURLWithPath: agentPath))))
        if !has {
            let seconds = Double((ContinuousClock.now - start).components.attoseconds) / 1e18 + Double((ContinuousClock.now - start).components.seconds)
            report(ClusterProgress(node: index, step: "upload", detail: String(format: "sent the agent (%d MB) and swapped it in, in %.2f s", Int(size / 1_000_000), seconds)))
        }
        if swapped.status == .exited(0), let endpoint = AgentEndpoint.parse(swapped.stdoutText), endpoint.instance != previous {
            return endpoint
        }
        guard swapped.status == .exited(3) else {
            throw ClusterError(.agentFailed, "\(node): cannot put the new agent into \(container): \(swapped.stderrText.trimmingCharacters(in: .whitespacesAndNewlines)); run `yonder down \(spec.name)` and up again")
        }
        report(ClusterProgress(node: index, step: "restart", detail: "the agent in \(container) did not start the new build by itself; restarting the container"))
        let restarted = try await run("docker restart --time 3 \(c)")
        guard restarted.status == .exited(0) else {
            throw ClusterError(.agentFailed, "\(node): cannot restart \(container): \(restarted.stderrText.trimmingCharacters(in: .whitespacesAndNewlines)); run `yonder down \(spec.name)` and up again")
        }
        return try await waitForEndpoint(after: previous)
    }

    /// With autostop in the spec, (re)starts the watcher on the node with the spec's limit
    /// (without, the probe removed any earlier one).
    func installAutostop() async throws {
        guard let autostop = spec.autostop else { return }
        let script = AutostopWatcher.script(
            container: container, onHost: spec.image == nil, autostop: autostop, shutsDownMachine: spec.provider == .aws)
        try await timed("autostop", "\(autostop), watched on the node") {
            let result = try await run(AutostopWatcher.install(container), input: Array(script.utf8))
            guard result.status == .exited(0) else {
                throw ClusterError(.agentFailed, "\(node): cannot start the autostop watcher: \(result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
            }
        }
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
