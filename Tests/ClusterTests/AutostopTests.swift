import Foundation
import QuickStartShared
import Testing
@testable import YonderCluster
import TestSupport
import Yonder
import YonderLocalServers
import YonderSSH

#if canImport(Glibc)
import Glibc
#endif

/// Autostop on `local` clusters with a limit of a few seconds: the watcher on the node stops
/// an idle container (or agent), activity of every kind postpones it, and `up` (or a connect)
/// brings it back.
@Suite(.serialized, .enabled(if: ClusterTestEnvironment.shouldRun))
struct AutostopTests {
    let home: URL
    init() throws {
        home = try TestYonderHome.make()
    }

    static let limit = 4

    func docker(_ arguments: String...) throws -> String {
        try ChildProcess.run("/usr/bin/env", ["docker"] + arguments).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func containerState(_ container: String) -> String {
        (try? docker("inspect", "--format", "{{.State.Status}}", container)) ?? "missing"
    }

    func yonder(_ arguments: String...) throws -> (exitCode: Int32, output: String) {
        try TestYonderHome.yonder(arguments, home: home)
    }

    /// Waits up to `limit` for `condition`; returns how long it took, or nil if it never held.
    func waitFor(_ limit: Duration, _ condition: () async throws -> Bool) async throws -> Duration? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < limit {
            if try await condition() { return ContinuousClock.now - start }
            try await Task.sleep(for: .milliseconds(200))
        }
        return nil
    }

    @Test func anIdleContainerIsStoppedActivityPostponesItAndUpBringsItBack() async throws {
        let environment = ProcessInfo.processInfo.environment
        let agent = try #require(environment["YONDER_QUICKSTART_AGENT"], "needs YONDER_QUICKSTART_AGENT (scripts/test.sh sets it)")
        let name = "a\(UInt16.random(in: 0...UInt16.max))"
        let container = "yonder-\(name)-0"
        let spec = ClusterSpec(name: name, image: ClusterTestEnvironment.image, agent: agent, autostop: .init(idleSeconds: Self.limit))
        let cluster = try await Cluster.up(spec)
        do {
            let connection = try await cluster.connection()
            let nodeHome = try await cluster.session().run("printf %s \"$HOME\"").stdoutText
            let watcherFolder = "\(nodeHome)/.yonder/autostop/\(container)"
            #expect(FileManager.default.fileExists(atPath: "\(watcherFolder)/watch"))

            // Each kind of activity, held for longer than the limit, keeps the container up.
            // An exec that runs 7 s:
            let slept = try await connection.exec(["sleep", "7"]).collect()
            #expect(slept.status.exitCode == 0)
            #expect(containerState(container) == "running", "a running exec postpones autostop")
            // Calls and object calls, one a second for 7 s:
            let counter = try await connection.create(Counter.self, .init(start: 0))
            for i in 0..<7 {
                #expect(try await connection.run(Add.self, [i, 1]) == i + 1)
                #expect(try await counter.increment(by: 1) == i + 1)
                try await Task.sleep(for: .seconds(1))
            }
            #expect(containerState(container) == "running", "calls postpone autostop")
            // An open `yonder ssh` session (a docker exec on the node) for 7 s:
            let ssh = try yonder("ssh", name, "--", "sleep", "7")
            #expect(ssh.exitCode == 0, "\(ssh.output)")
            #expect(containerState(container) == "running", "a yonder ssh session postpones autostop")

            // `yonder status` shows the setting and the idle time, and does not count as activity.
            let status = try yonder("status", name)
            #expect(status.output.contains("autostop after 4s idle, then stop"), "\(status.output)")
            #expect(status.output.contains("idle "), "\(status.output)")

            // Idle: stopped once the limit has passed, by the watcher on the node.
            let stopped = try await waitFor(.seconds(30)) { containerState(container) == "exited" }
            #expect(stopped != nil, "the idle container was not stopped")
            let log = (try? String(contentsOfFile: "\(watcherFolder)/log", encoding: .utf8)) ?? ""
            #expect(log.contains("stopping \(container)"), "\(log)")
            let afterStop = try yonder("status", name)
            #expect(afterStop.exitCode == 1)
            #expect(afterStop.output.contains("exited (its autostop: 4s idle, then stop); run `yonder up \(name)`"), "\(afterStop.output)")
            await cluster.close()

            // A connect starts the container again, and its watcher with it.
            let attached = try await Cluster.attach(name)
            #expect(try await attached.connection().run(Add.self, [2, 2]) == 4)
            let report = try await Cluster.report(name)
            #expect(report.nodes.first?.autostopWatching == true)
            await attached.close()
            #expect(try await waitFor(.seconds(30)) { containerState(container) == "exited" } != nil, "stopped again once idle")

            // `up` brings it back, and down removes the watcher.
            let again = try await Cluster.up(spec)
            #expect(containerState(container) == "running")
            #expect(try await again.connection().run(Add.self, [1, 1]) == 2)
            try await again.down()
            #expect(!FileManager.default.fileExists(atPath: watcherFolder), "down removes the watcher's folder")
        } catch {
            await cluster.close()
            try? await Cluster.down(name)
            throw error
        }
    }

    @Test func withoutAnImageTheIdleAgentIsStoppedAndAutostopCanBeTakenOut() async throws {
        let name = "a\(UInt16.random(in: 0...UInt16.max))"
        var spec = ClusterSpec(name: name, agent: ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"], autostop: .init(idleSeconds: 2))
        let cluster = try await Cluster.up(spec)
        do {
            let nodeHome = try await cluster.session().run("printf %s \"$HOME\"").stdoutText
            let watcherFolder = "\(nodeHome)/.yonder/autostop/yonder-\(name)-0"
            let agentPID = try await cluster.connection().info().pid
            await cluster.close()
            let stopped = try await waitFor(.seconds(30)) { kill(pid_t(agentPID), 0) != 0 }
            #expect(stopped != nil, "the idle agent was not stopped")

            // Without autostop, `up` takes the watcher away.
            spec.autostop = nil
            let again = try await Cluster.up(spec)
            #expect(!FileManager.default.fileExists(atPath: watcherFolder))
            let pid = try await again.connection().info().pid
            try await Task.sleep(for: .seconds(4))
            #expect(kill(pid_t(pid), 0) == 0, "without autostop the agent keeps running")
            try await again.down()
        } catch {
            await cluster.close()
            try? await Cluster.down(name)
            throw error
        }
    }

    /// On `aws`, the watcher stops the container and then shuts the machine down. The machine
    /// is this one here, so `sudo` and `shutdown` are a named fake on the watcher's PATH that
    /// only records how it was called; the container and Docker are real.
    @Test func onAWSTheWatcherShutsTheMachineDownAfterStoppingTheContainer() async throws {
        let container = "yonder-a\(UInt16.random(in: 0...UInt16.max))-0"
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-autostop-\(UUID().uuidString.prefix(8))")
        let bin = root.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let calls = root.appendingPathComponent("calls").path
        for tool in ["sudo", "shutdown"] {
            let path = bin.appendingPathComponent(tool).path
            try "#!/bin/sh\necho \"\(tool) $*\" >> \(calls)\n".write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o755)
        }
        _ = try docker("run", "-d", "--name", container, ClusterTestEnvironment.image, "sleep", "300")
        defer { _ = try? docker("rm", "-f", container) }
        let folder = root.appendingPathComponent(AutostopWatcher.folder(container))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let script = AutostopWatcher.script(container: container, onHost: false, autostop: .init(idleSeconds: 2), shutsDownMachine: true)
        try script.write(to: folder.appendingPathComponent("watch"), atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["HOME"] = root.path
        environment["PATH"] = bin.path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        let watcher = try ChildProcess.runCapturing("/bin/sh", [folder.appendingPathComponent("watch").path], environment: environment)
        #expect(watcher.exitCode == 0, "\(watcher.output)")
        #expect(containerState(container) == "exited")
        #expect(try String(contentsOfFile: calls, encoding: .utf8) == "sudo -n shutdown -h now\n")
        let log = try String(contentsOf: folder.appendingPathComponent("log"), encoding: .utf8)
        #expect(log.contains("idle for") && log.contains("stopping \(container)"), "\(log)")
    }
}
