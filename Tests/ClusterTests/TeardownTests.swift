import Foundation
import Testing
import TestSupport
import Yonder
import YonderCluster
import YonderLocalServers

#if canImport(Glibc)
import Glibc
#endif

/// What `down` and `up` do when things went wrong: a dead sshd whose pid was reused, an
/// unreachable node, leftovers on disk.
@Suite(.serialized, .enabled(if: ClusterTestEnvironment.shouldRun))
struct TeardownTests {
    let home: URL
    init() throws {
        home = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-teardown-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        setenv("YONDER_HOME", home.path, 1)
    }

    func spec(_ name: String, nodes: Int = 1) -> ClusterSpec {
        var spec = ClusterSpec(name: name, image: ClusterTestEnvironment.image, agent: ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"])
        spec.numNodes = nodes
        return spec
    }

    func containers(_ name: String) throws -> [String] {
        try ChildProcess.run("/usr/bin/env", ["docker", "ps", "-a", "--filter", "label=yonder.cluster=\(name)", "--format", "{{.Names}}"])
            .split(separator: "\n").map(String.init).sorted()
    }

    func nodeFolder(_ name: String, _ node: Int) -> URL { home.appendingPathComponent("local/\(name)-\(node)") }

    /// The sshd processes serving the cluster's node `node` (the listener and its children).
    func sshdProcesses(_ name: String, _ node: Int) -> [pid_t] {
        let text = (try? ChildProcess.run("/usr/bin/pgrep", ["-f", nodeFolder(name, node).path + "/sshd_config"])) ?? ""
        return text.split(separator: "\n").compactMap { pid_t($0) }
    }

    func isAlive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return !status.split(separator: "\n").contains { $0.hasPrefix("State:") && $0.contains("Z") }
    }

    /// Rewrites the recorded sshd pid of node `node`.
    func recordSSHD(_ pid: pid_t, cluster name: String, node: Int) throws {
        let file = home.appendingPathComponent("clusters/\(name).json")
        var state = try JSONSerialization.jsonObject(with: Data(contentsOf: file)) as! [String: Any]
        var nodes = state["nodes"] as! [[String: Any]]
        nodes[node]["sshdProcessID"] = Int(pid)
        state["nodes"] = nodes
        try JSONSerialization.data(withJSONObject: state).write(to: file)
    }

    /// sshd is told apart from another process by its command line and recorded start time.
    @Test func aRecordedSSHDIsVerifiedBeforeItIsSignalled() throws {
        let keys = home.appendingPathComponent("keys")
        try FileManager.default.createDirectory(at: keys, withIntermediateDirectories: true)
        try LocalSSHServer.generateKey(at: keys.appendingPathComponent("host").path)
        try LocalSSHServer.generateKey(at: keys.appendingPathComponent("client").path)
        let folder = home.appendingPathComponent("one")
        // sshd starts with a minimal environment: nothing of this process's is in its memory.
        setenv("YONDER_TEST_SECRET", "do-not-leak-\(getpid())", 1)
        defer { unsetenv("YONDER_TEST_SECRET") }
        let server = try LocalSSHServer(folder: folder, hostKey: keys.appendingPathComponent("host").path, authorizedKeys: keys.appendingPathComponent("client.pub").path)
        #expect(processMemory(of: server.processID, contains: "PATH=/usr/local/sbin:") == true)
        #expect(processMemory(of: server.processID, contains: "do-not-leak-\(getpid())") == false)
        #expect(LocalSSHServer.isRunning(processID: server.processID, folder: folder))
        #expect(!LocalSSHServer.isRunning(processID: server.processID, folder: home.appendingPathComponent("other")))
        #expect(!LocalSSHServer.isRunning(processID: getpid(), folder: folder))
        // Another start time recorded for the same pid: not the same process.
        let record = folder.appendingPathComponent("yonder-sshd.pid")
        let saved = try String(contentsOf: record, encoding: .utf8)
        try "\(server.processID) 1\n".write(to: record, atomically: true, encoding: .utf8)
        #expect(!LocalSSHServer.isRunning(processID: server.processID, folder: folder))
        #expect(LocalSSHServer.stop(processID: server.processID, folder: folder))
        #expect(isAlive(server.processID), "an unverified pid was signalled")
        try saved.write(to: record, atomically: true, encoding: .utf8)
        #expect(LocalSSHServer.stop(processID: server.processID, folder: folder))
        #expect(!isAlive(server.processID), "\((try? String(contentsOfFile: "/proc/\(server.processID)/status", encoding: .utf8)) ?? "")")
    }

    /// The node's sshd died and its pid now belongs to another program: `down` leaves that
    /// program (and its children) alone, still removes the container through a new sshd, and
    /// removes the node's folder.
    @Test func downSparesAProcessThatReusedTheSSHDPid() async throws {
        let name = "f\(UInt16.random(in: 0...UInt16.max))"
        let cluster = try await Cluster.up(spec(name)) { _ in }
        await cluster.close()
        let sshd = try #require(cluster.state.nodes[0].sshdProcessID)
        #expect(FileManager.default.fileExists(atPath: nodeFolder(name, 0).appendingPathComponent("sshd_config").path))
        kill(sshd, SIGKILL)
        for _ in 0..<100 where isAlive(sshd) { try await Task.sleep(for: .milliseconds(20)) }
        // An unrelated program with a child, standing in for the process that got the pid.
        let stranger = try ChildProcess.spawn("/bin/sh", ["-c", "sleep 300 & wait"])
        defer {
            for pid in [stranger] + ChildProcess.descendants(of: stranger) { kill(pid, SIGKILL) }
            ChildProcess.wait(stranger)
        }
        try await Task.sleep(for: .milliseconds(100))
        let strangerChildren = ChildProcess.descendants(of: stranger)
        #expect(!strangerChildren.isEmpty)
        try recordSSHD(stranger, cluster: name, node: 0)

        try await Cluster.down(name)
        #expect(isAlive(stranger) && strangerChildren.allSatisfy(isAlive), "down signalled a process that is not its sshd")
        #expect(try containers(name).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: nodeFolder(name, 0).path))
        #expect(sshdProcesses(name, 0).isEmpty)
        #expect((try? ClusterState.load(name)) == nil)
    }

    /// `up` reuses a node's sshd only when the recorded pid is verified to be it.
    @Test func upDoesNotReuseAnUnverifiedPid() async throws {
        let name = "f\(UInt16.random(in: 0...UInt16.max))"
        let first = try await Cluster.up(spec(name)) { _ in }
        await first.close()
        let stranger = try ChildProcess.spawn("/bin/sleep", ["300"])
        defer {
            kill(stranger, SIGKILL)
            ChildProcess.wait(stranger)
        }
        try recordSSHD(stranger, cluster: name, node: 0)
        let steps = ProgressSteps()
        let again = try await Cluster.up(spec(name)) { steps.add($0) }
        await again.close()
        #expect(steps.all.contains { $0.step == "sshd" }, "a new sshd was expected")
        #expect(again.state.nodes[0].sshdProcessID != stranger)
        #expect(isAlive(stranger))
        try await Cluster.down(name)
        // The first sshd, no longer recorded, is this test's to stop.
        if let old = first.state.nodes[0].sshdProcessID, old != again.state.nodes[0].sshdProcessID { kill(old, SIGKILL) }
        #expect(try containers(name).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: nodeFolder(name, 0).path))
    }

    /// A failed `up` removes the node folders it made.
    @Test func aFailedUpLeavesNoNodeFolder() async throws {
        let name = "f\(UInt16.random(in: 0...UInt16.max))"
        var bad = spec(name)
        bad.image = "127.0.0.1:1/nothing/here:1"
        await #expect(throws: ClusterError.self) { _ = try await Cluster.up(bad) { _ in } }
        #expect(!FileManager.default.fileExists(atPath: nodeFolder(name, 0).path))
        #expect(sshdProcesses(name, 0).isEmpty)
    }

    /// A node that cannot be reached (its sshd frozen) keeps its record; the rest goes. Once it
    /// answers, `down` again finishes; `--forget` forgets it, saying what may still run.
    @Test func downWithAnUnreachableNodeKeepsItsRecord() async throws {
        let name = "f\(UInt16.random(in: 0...UInt16.max))"
        let cluster = try await Cluster.up(spec(name, nodes: 2)) { _ in }
        await cluster.close()
        let frozen = sshdProcesses(name, 1)
        #expect(!frozen.isEmpty)
        for pid in frozen { kill(pid, SIGSTOP) }
        let error = await #expect(throws: ClusterError.self) { try await Cluster.down(name) }
        for pid in frozen { kill(pid, SIGCONT) }
        #expect(error?.code == .nodeUnreachable)
        #expect(error?.description.contains("yonder down \(name)") == true && error?.description.contains("--forget") == true, "\(error.map { "\($0)" } ?? "")")
        #expect(error?.description.contains("yonder-\(name)-1 may still run") == true)
        #expect(try containers(name) == ["yonder-\(name)-1"])
        let kept = try ClusterState.load(name)
        #expect(kept.nodes.count == 1 && kept.nodes[0].index == 1 && kept.nodes[0].container == "yonder-\(name)-1")
        #expect(!FileManager.default.fileExists(atPath: nodeFolder(name, 0).path))
        #expect(FileManager.default.fileExists(atPath: nodeFolder(name, 1).path))

        // It answers again: down finishes.
        let steps = ProgressSteps()
        let left = try await Cluster.down(name) { steps.add($0) }
        #expect(left.isEmpty)
        #expect(steps.all.contains { $0.node == 1 && $0.detail == "removed yonder-\(name)-1" })
        #expect(try containers(name).isEmpty)
        #expect((try? ClusterState.load(name)) == nil)
        #expect(!FileManager.default.fileExists(atPath: nodeFolder(name, 1).path))
        #expect(sshdProcesses(name, 1).isEmpty)
    }

    @Test func downForgetForgetsAnUnreachableNode() async throws {
        let name = "f\(UInt16.random(in: 0...UInt16.max))"
        let cluster = try await Cluster.up(spec(name)) { _ in }
        await cluster.close()
        defer { _ = try? ChildProcess.run("/usr/bin/env", ["docker", "rm", "-f", "yonder-\(name)-0"]) }
        let frozen = sshdProcesses(name, 0)
        for pid in frozen { kill(pid, SIGSTOP) }
        let left = try await Cluster.down(name, forget: true)
        for pid in frozen { kill(pid, SIGCONT) }
        #expect(left.count == 1 && left[0].contains("yonder-\(name)-0 may still run"), "\(left)")
        #expect((try? ClusterState.load(name)) == nil)
        // Its sshd is stopped and its folder removed; the container is left, as said.
        #expect(sshdProcesses(name, 0).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: nodeFolder(name, 0).path))
        #expect(try containers(name) == ["yonder-\(name)-0"])
    }

    /// One `up` or `down` of a cluster at a time: while one holds the cluster, another fails
    /// at once, naming it.
    @Test func anOperationInProgressHoldsTheCluster() async throws {
        let name = "f\(UInt16.random(in: 0...UInt16.max))"
        let holding = AsyncStream<Void>.makeStream()
        let release = DispatchSemaphore(value: 0)
        let first = Task {
            try await Cluster.up(spec(name)) { step in
                guard step.step == "sshd" else { return }
                // Hold the operation here until the test has tried a second one.
                holding.continuation.yield()
                release.wait()
            }
        }
        for await _ in holding.stream { break }
        let busy = await #expect(throws: ClusterError.self) { _ = try await Cluster.up(spec(name)) { _ in } }
        #expect(busy?.code == .busy)
        #expect(busy?.description.contains("cluster \(name) is being brought up by pid \(getpid()) (started ") == true, "\(busy.map { "\($0)" } ?? "")")
        let busyDown = await #expect(throws: ClusterError.self) { try await Cluster.down(name) }
        #expect(busyDown?.code == .busy)
        release.signal()
        let cluster = try await first.value
        await cluster.close()
        try await Cluster.down(name)
        #expect(try containers(name).isEmpty)
    }

    /// Without an image, `down` stops the agent on the node by its recorded pid only when
    /// that process is the agent: a pid that names another program is left alone.
    @Test func downSparesAProcessThatReusedTheAgentPid() async throws {
        let name = "f\(UInt16.random(in: 0...UInt16.max))"
        var onHost = spec(name)
        onHost.image = nil
        let cluster = try await Cluster.up(onHost) { _ in }
        let agent = try await cluster.connection().info().pid
        await cluster.close()
        let stranger = try ChildProcess.spawn("/bin/sleep", ["300"])
        defer {
            kill(stranger, SIGKILL)
            ChildProcess.wait(stranger)
            kill(pid_t(agent), SIGKILL)
        }
        let folder = NSHomeDirectory() + "/.yonder/run/yonder-\(name)-0"
        try "\(stranger)\n".write(toFile: folder + "/pid", atomically: true, encoding: .utf8)
        try await Cluster.down(name)
        #expect(isAlive(stranger), "down signalled a process that is not its agent")
        #expect(!FileManager.default.fileExists(atPath: folder))
    }
}
