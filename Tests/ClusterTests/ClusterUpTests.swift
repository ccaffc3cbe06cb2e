import Foundation
import Testing
import TestSupport
import Yonder
import YonderCluster
import YonderLocalServers

#if canImport(Glibc)
import Glibc
#endif

/// What the cluster tests need: dockerd with the base image, sshd, and the static agent that
/// scripts/test.sh builds (YONDER_STATIC_AGENT).
enum ClusterTestEnvironment {
    static let image = ProcessInfo.processInfo.environment["YONDER_BASE_IMAGE"] ?? "yonder/debian:bookworm"

    static var shouldRun: Bool {
        let agent = ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"]
        let ready = LocalSSHServer.toolsInstalled && agent.map { FileManager.default.isExecutableFile(atPath: $0) } == true
            && (try? ChildProcess.run("/usr/bin/env", ["docker", "image", "inspect", image])) != nil
        if !ready && !runningUnderCI {
            print("cluster tests skipped: they need dockerd with \(image) (bash scripts/setup.sh), sshd, and YONDER_STATIC_AGENT set to a static yonder-agent (bash scripts/test.sh sets it)")
        }
        return ready || runningUnderCI
    }
}

/// `up` on the local provider against the real dockerd.
@Suite(.serialized, .enabled(if: ClusterTestEnvironment.shouldRun))
struct ClusterUpTests {
    static let image = ClusterTestEnvironment.image

    let home: URL
    init() throws {
        home = try TestYonderHome.make()
    }

    func spec(_ name: String, image: String = ClusterUpTests.image) -> ClusterSpec {
        ClusterSpec(name: name, image: image, resources: .init(shmSize: "256m"), envs: ["YONDER_TEST_MARK": "inside-\(name)"],
                    agent: ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"])
    }

    func containers(_ name: String) throws -> [String] {
        try ChildProcess.run("/usr/bin/env", ["docker", "ps", "-a", "--filter", "label=yonder.cluster=\(name)", "--format", "{{.Names}}"])
            .split(separator: "\n").map(String.init)
    }

    @Test func upCallAttachReuseRestartAndDown() async throws {
        let name = "t\(UInt16.random(in: 0...UInt16.max))"
        let steps = ProgressSteps()
        let cluster = try await Cluster.up(spec(name)) { steps.add($0) }
        let connection = try await cluster.connection()
        #expect(try await connection.ping() < .seconds(1))
        let marker = try await connection.exec(["sh", "-c", "echo $YONDER_TEST_MARK; cat /etc/debian_version; df -h /dev/shm | tail -1"]).collect()
        #expect(marker.outputText.hasPrefix("inside-\(name)\n"))
        #expect(marker.outputText.contains("256M"))
        #expect(try containers(name) == ["yonder-\(name)-0"])
        #expect(steps.all.contains { $0.step == "container" && $0.detail.contains("creating") })
        // The agent's upload (when this node lacks the build) reports bytes up to the total.
        let uploaded = steps.all.filter { $0.step == "upload" }.compactMap(\.fraction)
        #expect(uploaded.allSatisfy { $0.done <= $0.total } && uploaded.last.map { $0.done == $0.total } ?? true)
        let stateFile = home.appendingPathComponent("clusters/\(name).json")
        let mode = try FileManager.default.attributesOfItem(atPath: stateFile.path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try String(contentsOf: stateFile, encoding: .utf8).contains("yonder-\(name)-0"))

        // Another "process": attach by name.
        let attached = try await Cluster.attach(name)
        #expect(try await attached.connection().info().pid == (try await connection.info().pid))
        await attached.close()
        await cluster.close()

        // up again: everything is reused.
        let reuseSteps = ProgressSteps()
        let again = try await Cluster.up(spec(name)) { reuseSteps.add($0) }
        #expect(reuseSteps.all.contains { $0.detail.contains("reusing") })
        #expect(!reuseSteps.all.contains { $0.step == "upload" })
        await again.close()

        // A dead agent (the container stops with it) is started again.
        try ChildProcess.run("/usr/bin/env", ["docker", "kill", "yonder-\(name)-0"])
        let restarted = try await Cluster.up(spec(name)) { _ in }
        #expect(try await restarted.connection().ping() < .seconds(1))
        await restarted.close()

        // A removed container is made again, without uploading the agent again.
        try ChildProcess.run("/usr/bin/env", ["docker", "rm", "-f", "yonder-\(name)-0"])
        let recreateSteps = ProgressSteps()
        let recreated = try await Cluster.up(spec(name)) { recreateSteps.add($0) }
        #expect(try await recreated.connection().ping() < .seconds(1))
        #expect(recreateSteps.all.contains { $0.step == "container" && $0.detail.contains("creating") })
        #expect(!recreateSteps.all.contains { $0.step == "upload" })
        await recreated.close()

        // Another agent build (a few random bytes more: new on the node) is swapped in place of
        // the running one: same container, agent restarted.
        let newer = home.appendingPathComponent("yonder-agent-newer").path
        var bytes = try Data(contentsOf: URL(fileURLWithPath: ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"]!))
        bytes.append(contentsOf: (0..<8).map { _ in UInt8.random(in: 0...255) })
        try bytes.write(to: URL(fileURLWithPath: newer))
        chmod(newer, 0o755)
        var newerSpec = spec(name)
        newerSpec.agent = newer
        let replaceSteps = ProgressSteps()
        let replaced = try await Cluster.up(newerSpec) { replaceSteps.add($0) }
        #expect(replaceSteps.all.contains { $0.detail.contains("swapping in") && $0.detail.contains("the container and its files stay") })
        #expect(!replaceSteps.all.contains { $0.step == "container" && $0.detail.contains("creating") })
        #expect(replaceSteps.all.contains { $0.step == "upload" })
        #expect(replaced.state.nodes[0].agentBuild != recreated.state.nodes[0].agentBuild)
        #expect(try await replaced.connection().info().build == replaced.state.nodes[0].agentBuild)
        let sshdPID = replaced.state.nodes[0].sshdProcessID
        // The node is this machine: remove the one-off build from its agent store.
        let nodeHome = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        defer { try? FileManager.default.removeItem(atPath: "\(nodeHome)/.yonder/agents/\(replaced.state.nodes[0].agentBuild)") }

        try await replaced.down()
        #expect(try containers(name).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: stateFile.path))
        if let sshdPID { #expect(kill(sshdPID, 0) != 0) }
        let unknown = await #expect(throws: ClusterError.self) { try await Cluster.attach(name) }
        #expect(unknown?.code == .unknownCluster)
    }

    @Test func twoNodesEachWithItsOwnContainerAndAgent() async throws {
        let name = "t\(UInt16.random(in: 0...UInt16.max))"
        var twoNodes = spec(name)
        twoNodes.numNodes = 2
        let cluster = try await Cluster.up(twoNodes) { _ in }
        #expect(cluster.nodeCount == 2)
        for node in 0..<2 {
            let rank = try await cluster.connection(node: node).exec(["sh", "-c", "echo $YONDER_NODE_RANK/$YONDER_NUM_NODES"]).collect()
            #expect(rank.outputText == "\(node)/2\n")
        }
        #expect(Set(cluster.state.nodes.map(\.port)).count == 2)
        #expect(try containers(name).sorted() == ["yonder-\(name)-0", "yonder-\(name)-1"])
        let outOfRange = await #expect(throws: ClusterError.self) { try await cluster.connection(node: 2) }
        #expect(outOfRange?.code == .unknownNode)
        try await cluster.down()
        #expect(try containers(name).isEmpty)
    }

    @Test func anImageWithNoShellRunsTheAgent() async throws {
        // An image holding one static program and nothing else: no shell, no libc.
        let root = home.appendingPathComponent("rootfs")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("app"), withIntermediateDirectories: true)
        let agent = try #require(
            ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"],
            "set YONDER_STATIC_AGENT to a static yonder-agent (scripts/test.sh builds one with -static-executable)")
        try FileManager.default.copyItem(atPath: agent, toPath: root.appendingPathComponent("app/program").path)
        let image = "yonder-test/no-shell:1"
        try ChildProcess.run("/bin/sh", ["-c", "tar -C \(root.path) -c . | docker import - \(image)"])
        defer { _ = try? ChildProcess.run("/usr/bin/env", ["docker", "rmi", image]) }
        let name = "t\(UInt16.random(in: 0...UInt16.max))"
        let cluster = try await Cluster.up(spec(name, image: image)) { _ in }
        #expect(try await cluster.connection().ping() < .seconds(1))
        let noShell = await #expect(throws: YonderError.self) { _ = try await cluster.connection().exec(["sh", "-c", "true"]).collect() }
        #expect(noShell?.code == .execFailed)
        try await cluster.down()
    }

    @Test func sshProviderReachesAnExistingHost() async throws {
        // An "existing machine": an sshd with a key of its own, reached as the ssh provider
        // does, recording its host key on first use in ~/.ssh/known_hosts (HOME is a temp
        // folder here).
        let server = try SSHServerFixture()
        let savedHome = ProcessInfo.processInfo.environment["HOME"]
        setenv("HOME", home.path, 1)
        defer { if let savedHome { setenv("HOME", savedHome, 1) } }
        let name = "t\(UInt16.random(in: 0...UInt16.max))"
        var spec = spec(name)
        spec.provider = .ssh
        spec.hosts = ["\(server.user)@127.0.0.1:\(server.port)"]
        spec.identityFile = server.clientKey

        let refused = await #expect(throws: (any Error).self) { _ = try await Cluster.up(spec) { _ in } }
        #expect("\(refused!)".contains("can't be established"))

        spec.acceptNewHostKeys = true
        let cluster = try await Cluster.up(spec) { _ in }
        #expect(try await cluster.connection().ping() < .seconds(1))
        #expect(try String(contentsOfFile: home.appendingPathComponent(".ssh/known_hosts").path, encoding: .utf8).contains("[127.0.0.1]:\(server.port)"))
        #expect(cluster.state.nodes[0].sshdProcessID == nil)
        try await cluster.down()
        #expect(try containers(name).isEmpty)
    }

    @Test func sshProviderReachesAPrivateNodeThroughAJumpHost() async throws {
        // The node's name resolves only on the jump host's side: here the jump host is the
        // test's sshd, and `ssh -W` there connects on to 127.0.0.1, the "private" node.
        let server = try SSHServerFixture()
        let savedHome = ProcessInfo.processInfo.environment["HOME"]
        setenv("HOME", home.path, 1)
        defer { if let savedHome { setenv("HOME", savedHome, 1) } }
        let name = "t\(UInt16.random(in: 0...UInt16.max))"
        var spec = spec(name)
        spec.provider = .ssh
        spec.hosts = ["\(server.user)@yonder-private-node.invalid:\(server.port)"]
        spec.identityFile = server.clientKey
        spec.acceptNewHostKeys = true
        spec.sshProxyCommand = server.jumpCommand(to: "127.0.0.1:%p")
        let cluster = try await Cluster.up(spec) { _ in }
        #expect(try await cluster.connection().ping() < .seconds(1))
        #expect(cluster.state.nodes[0].proxyCommand == spec.sshProxyCommand)
        await cluster.close()
        // A later process finds its way in again from the state alone.
        let attached = try await Cluster.attach(name)
        #expect(try await attached.connection().ping() < .seconds(1))
        try await attached.down()
        #expect(try containers(name).isEmpty)
    }

    @Test func aGPUClusterOnANodeWithoutGPUsIsRefusedBeforeAnyContainer() async throws {
        // This machine has no NVIDIA driver (the test says so and stops if it has one).
        guard (try? ChildProcess.runCapturing("/usr/bin/env", ["sh", "-c", "command -v nvidia-smi"]))?.exitCode != 0 else {
            print("skipped: this machine has nvidia-smi; the test needs a node without GPUs")
            return
        }
        let name = "t\(UInt16.random(in: 0...UInt16.max))"
        var spec = spec(name)
        spec.resources.accelerators = .init(name: "A100", count: 1)
        let error = await #expect(throws: ClusterError.self) { _ = try await Cluster.up(spec) { _ in } }
        #expect(error?.message.contains("1× A100") == true)
        #expect(error?.message.contains("no NVIDIA driver") == true)
        #expect(try containers(name).isEmpty)
    }

    @Test func aMissingImageFailsClearlyAndLeavesNothing() async throws {
        let name = "t\(UInt16.random(in: 0...UInt16.max))"
        let error = await #expect(throws: ClusterError.self) {
            _ = try await Cluster.up(spec(name, image: "127.0.0.1:1/nothing/here:1")) { _ in }
        }
        #expect(error?.code == .imageUnavailable)
        #expect(error?.description.contains("127.0.0.1:1/nothing/here:1") == true)
        #expect(try containers(name).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: home.appendingPathComponent("clusters/\(name).json").path))
    }

    /// No image: the agent runs on the node itself, detached from the SSH session, with the
    /// spec's env; up reuses it, restarts it when it died; attach finds it; down stops it.
    @Test func withoutAnImageTheAgentRunsOnTheNode() async throws {
        let name = "t\(UInt16.random(in: 0...UInt16.max))"
        var spec = spec(name)
        spec.image = nil
        let steps = ProgressSteps()
        let cluster = try await Cluster.up(spec) { steps.add($0) }
        #expect(steps.all.contains { $0.step == "start" })
        #expect(try containers(name).isEmpty)
        // On this machine, not in a container: a file the test just made is there.
        let here = home.appendingPathComponent("made-by-the-test").path
        try "on the node".write(toFile: here, atomically: true, encoding: .utf8)
        let seen = try await cluster.connection().exec(["sh", "-c", "cat \(here); echo; echo $YONDER_TEST_MARK $YONDER_CLUSTER"]).collect()
        #expect(seen.outputText == "on the node\ninside-\(name) \(name)\n", "exec printed: \(seen.outputText)")
        let pid = try await cluster.connection().info().pid
        #expect(isAlive(pid))
        await cluster.close()

        // The agent outlives the session that started it; up reuses it, attach finds it.
        let again = ProgressSteps()
        let reused = try await Cluster.up(spec) { again.add($0) }
        #expect(again.all.contains { $0.detail.contains("reusing the agent") })
        #expect(try await reused.connection().info().pid == pid)
        await reused.close()
        let attached = try await Cluster.attach(name)
        #expect(try await attached.connection().ping() < .seconds(1))
        await attached.close()
        #expect(try await Cluster.report(name).nodes.first?.containerState == "running")

        // Killed, it is started again.
        kill(pid_t(pid), SIGKILL)
        for _ in 0..<50 where isAlive(pid) { try await Task.sleep(for: .milliseconds(50)) }
        let restarted = try await Cluster.up(spec) { _ in }
        #expect(try await restarted.connection().info().pid != pid)
        let newPID = try await restarted.connection().info().pid

        try await restarted.down()
        for _ in 0..<50 where isAlive(newPID) { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!isAlive(newPID))
        #expect(!FileManager.default.fileExists(atPath: NSHomeDirectory() + "/.yonder/run/yonder-\(name)-0"))
    }

    /// Kills the processes serving the connections to a local node's sshd; its listener stays.
    func dropConnections(of cluster: String, node: Int) {
        ClusterFaultTests.dropConnections(of: cluster, node: node, home: home)
    }

    /// Whether process `pid` runs (a zombie, which nobody may reap here, does not).
    func isAlive(_ pid: Int) -> Bool {
        guard kill(pid_t(pid), 0) == 0 else { return false }
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return !status.split(separator: "\n").contains { $0.hasPrefix("State:") && $0.contains("Z") }
    }

    /// The SSH connection dies right after the container was created: up fails, and the
    /// container is removed over a new connection.
    @Test func aConnectionLostMidwayLeavesNoContainer() async throws {
        let name = "t\(UInt16.random(in: 0...UInt16.max))"
        // How the loss shows depends on when it lands (a lost connection, a refused channel).
        await #expect(throws: (any Error).self) {
            _ = try await Cluster.up(spec(name)) { step in
                guard step.step == "container", step.elapsed != nil else { return }
                dropConnections(of: name, node: 0)
            }
        }
        #expect(try containers(name).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: home.appendingPathComponent("clusters/\(name).json").path))
    }

    /// Nodes come up at once; when one fails, the others' containers go too.
    @Test func oneNodeFailingUndoesTheOthers() async throws {
        let name = "t\(UInt16.random(in: 0...UInt16.max))"
        var twoNodes = spec(name)
        twoNodes.numNodes = 2
        let steps = ProgressSteps()
        await #expect(throws: (any Error).self) {
            _ = try await Cluster.up(twoNodes) { step in
                steps.add(step)
                guard step.node == 1, step.step == "container", step.elapsed != nil else { return }
                dropConnections(of: name, node: 1)
            }
        }
        #expect(steps.all.contains { $0.node == 0 && $0.step == "container" && $0.elapsed != nil })
        #expect(try containers(name).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: home.appendingPathComponent("clusters/\(name).json").path))
        #expect((try? ChildProcess.run("/usr/bin/pgrep", ["-f", home.appendingPathComponent("local/\(name)-").path])) == nil)
    }

    @Test func aDynamicallyLinkedAgentIsRefused() async throws {
        var bad = spec("dyn")
        bad.agent = "/usr/bin/env"
        let error = await #expect(throws: ClusterError.self) { _ = try await Cluster.up(bad) { _ in } }
        #expect(error?.description.contains("dynamically linked") == true)
    }
}

/// Progress reports, collected from any thread.
final class ProgressSteps: @unchecked Sendable {
    // Safe: behind `lock`.
    private let lock = NSLock()
    private var steps: [ClusterProgress] = []
    func add(_ step: ClusterProgress) { lock.withLock { steps.append(step) } }
    var all: [ClusterProgress] { lock.withLock { steps } }
}
