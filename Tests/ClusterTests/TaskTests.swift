import Foundation
import QuickStartShared
import Synchronization
import Testing
import TestSupport
import Yonder
import YonderCluster
import YonderLocalServers

#if canImport(Glibc)
import Glibc
#endif

/// Tasks on a two-node `local` cluster, as SkyPilot users write them: `setup` once per
/// container, `run` on every node with the nodes' ranks and addresses, through the library
/// and through `yonder launch`.
@Suite(.serialized, .enabled(if: ClusterTestEnvironment.shouldRun))
struct TaskTests {
    let home: URL
    init() throws {
        home = try TestYonderHome.make()
    }

    func yonder(_ arguments: String...) throws -> (exitCode: Int32, output: String) {
        try TestYonderHome.yonder(arguments, home: home)
    }

    func specFile(_ name: String, setup: String, run: String) throws -> String {
        let path = home.appendingPathComponent("\(name).yaml").path
        try """
            name: \(name)
            image_id: docker:\(ClusterTestEnvironment.image)
            num_nodes: 2
            agent: \(ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"] ?? "")
            setup: |
            \(setup.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            run: |
            \(run.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func setupRunsOncePerContainerAndLaunchRunsOnEveryNode() async throws {
        let name = "k\(UInt16.random(in: 0...UInt16.max))"
        let spec = try specFile(name, setup: """
            echo "setting up $YONDER_NODE_RANK"
            echo x >> /tmp/setup-count
            """, run: """
            echo "rank $SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES head $MASTER_ADDR:$MASTER_PORT"
            echo "ips $(echo "$YONDER_NODE_IPS" | tr '\\n' ' ')"
            echo "setups $(wc -l < /tmp/setup-count)"
            echo "to stderr" >&2
            """)
        defer { _ = try? yonder("down", name) }

        let first = try yonder("launch", spec)
        #expect(first.exitCode == 0, "\(first.output)")
        for node in 0..<2 {
            #expect(first.output.contains("[node \(node)] setup: setting up \(node)"), "\(first.output)")
            #expect(first.output.contains("(node \(node)) rank \(node) of 2 head 127.0.0.1:29500"))
            #expect(first.output.contains("(node \(node)) ips 127.0.0.1 127.0.0.1"))
            #expect(first.output.contains("(node \(node)) setups 1"))
            #expect(first.output.contains("(node \(node)) to stderr"))
        }

        // Again by name (as `sky exec`): only run; and with the spec: the setup is not re-run.
        let byName = try yonder("launch", name)
        #expect(byName.exitCode == 0 && byName.output.contains("(node 1) setups 1") && !byName.output.contains("setup:"), "\(byName.output)")
        let again = try yonder("launch", spec)
        #expect(again.output.contains("already done in this container"), "\(again.output)")
        #expect(again.output.contains("(node 0) setups 1"))

        // A run that fails on node 1: its status is launch's, and the node is named.
        let failing = try specFile(name, setup: "echo x >> /tmp/setup-count", run: "[ \"$YONDER_NODE_RANK\" = 0 ] || exit 7")
        let failed = try yonder("launch", failing)
        #expect(failed.exitCode == 7, "\(failed.output)")
        #expect(failed.output.contains("node 1: the run ended with exit code 7"), "\(failed.output)")
        // The changed setup ran again, once per node.
        #expect(failed.output.contains("running the spec's setup"))
    }

    @Test func aFailingSetupFailsUpWithItsOutputAndLeavesNothing() async throws {
        let name = "k\(UInt16.random(in: 0...UInt16.max))"
        var spec = ClusterSpec(name: name, image: ClusterTestEnvironment.image, agent: ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"])
        spec.setup = "echo preparing\necho 'no such package' >&2\nexit 3"
        let error = await #expect(throws: ClusterError.self) { _ = try await Cluster.up(spec) }
        #expect(error?.code == .taskFailed)
        #expect(error?.message.contains("node 0: the setup failed (exit code 3); its last lines:\npreparing\nno such package") == true, "\(String(describing: error))")
        let left = try ChildProcess.run("/usr/bin/env", ["docker", "ps", "-a", "--filter", "label=yonder.cluster=\(name)", "--format", "{{.Names}}"])
        #expect(left.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "a failed up leaves no container")
        #expect(throws: ClusterError.self) { try ClusterState.load(name) }
    }

    @Test func mapSpreadsInputsOverTheNodesInOrderAndSurvivesALostNode() async throws {
        let agent = try #require(ProcessInfo.processInfo.environment["YONDER_QUICKSTART_AGENT"], "needs YONDER_QUICKSTART_AGENT (scripts/test.sh sets it)")
        let name = "m\(UInt16.random(in: 0...UInt16.max))"
        let cluster = try await Cluster.up(ClusterSpec(name: name, image: ClusterTestEnvironment.image, numNodes: 2, agent: agent))
        do {
            // 1,000 inputs over two nodes: in input order, and both nodes took some.
            let sums = try await cluster.map(Add.self, (0..<1000).map { [$0, 1] })
            #expect(sums == (0..<1000).map { $0 + 1 })
            let greetings = try await cluster.map(Greet.self, (0..<200).map { "n\($0)" }, concurrencyPerNode: 4)
            #expect(greetings.enumerated().allSatisfy { $0.element.hasPrefix("Hello, n\($0.offset), from node ") })
            let onNode0 = greetings.filter { $0.contains("from node 0,") }.count
            #expect(onNode0 > 0 && onNode0 < 200, "both nodes take inputs (node 0 took \(onNode0) of 200)")
            // Once per node.
            let everywhere = try await cluster.broadcast(Greet.self, "all")
            #expect(everywhere.count == 2 && everywhere[0].contains("from node 0,") && everywhere[1].contains("from node 1,"))

            // Node 1 killed midway: an idempotent function's inputs run again on node 0, and
            // every output is still there, in order.
            var seen = 0
            var outputs = [Int?](repeating: nil, count: 3000)
            for try await (index, output) in cluster.mapAsCompleted(Add.self, (0..<3000).map { [$0, $0] }, concurrencyPerNode: 4) {
                outputs[index] = output
                seen += 1
                if seen == 200 { _ = try ChildProcess.run("/usr/bin/env", ["docker", "kill", "yonder-\(name)-1"]) }
            }
            #expect(seen == 3000)
            #expect(outputs == (0..<3000).map { $0 * 2 })
            await cluster.close()
            try await Cluster.down(name)
        } catch {
            await cluster.close()
            try? await Cluster.down(name)
            throw error
        }
    }

    @Test func ctrlCDuringLaunchStopsTheRunOnEveryNode() async throws {
        let name = "k\(UInt16.random(in: 0...UInt16.max))"
        let spec = try specFile(name, setup: "true", run: "echo started\nsleep 300\necho finished")
        defer { _ = try? yonder("down", name) }
        let log = home.appendingPathComponent("launch.log").path
        var environment = ProcessInfo.processInfo.environment
        environment["YONDER_HOME"] = home.path
        let pid = try ChildProcess.spawn(RepositoryPaths.executable("yonder").path, ["launch", spec], environment: environment, output: log)
        func output() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        let deadline = ContinuousClock.now + .seconds(120)
        while !(output().contains("(node 0) started") && output().contains("(node 1) started")) {
            guard ContinuousClock.now < deadline else {
                kill(pid, SIGKILL)
                ChildProcess.wait(pid)
                Issue.record("the run did not start on both nodes: \(output())")
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        kill(pid, SIGINT)
        let status = ChildProcess.wait(pid)
        #expect((status >> 8) & 0xff == 130, "launch exits with 130 after Ctrl-C")
        #expect(output().contains("the run (job 1) was stopped on every node of \(name)"), "\(output())")
        #expect(!output().contains("finished"))
        // Nothing of the run is left in either container.
        for node in 0..<2 {
            var processes = ""
            for _ in 0..<50 {
                processes = try ChildProcess.run("/usr/bin/env", ["docker", "top", "yonder-\(name)-\(node)"])
                if !processes.contains("sleep 300") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(!processes.contains("sleep 300"), "node \(node) still runs: \(processes)")
        }
    }

    @Test func theWorkdirAndMountsSyncOnlyWhatChangedAndDeletionsPropagate() async throws {
        let name = "w\(UInt16.random(in: 0...UInt16.max))"
        let project = home.appendingPathComponent("project-\(name)")
        let data = home.appendingPathComponent("data-\(name)")
        for folder in [project.appendingPathComponent("src"), data] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        func write(_ text: String, _ url: URL) throws { try text.write(to: url, atomically: true, encoding: .utf8) }
        try write("alpha\n", project.appendingPathComponent("a.txt"))
        try write("beta\n", project.appendingPathComponent("src/b.txt"))
        try write("big build output\n", project.appendingPathComponent("out.log"))
        try write("*.log\n", project.appendingPathComponent(".gitignore"))
        try write("notes/\n", project.appendingPathComponent(".yonderignore"))
        try FileManager.default.createDirectory(at: project.appendingPathComponent("notes"), withIntermediateDirectories: true)
        try write("private\n", project.appendingPathComponent("notes/n.txt"))
        try write("1,2,3\n", data.appendingPathComponent("table.csv"))
        let spec = home.appendingPathComponent("\(name).yaml").path
        try write("""
            name: \(name)
            image_id: docker:\(ClusterTestEnvironment.image)
            num_nodes: 2
            agent: \(ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"] ?? "")
            workdir: project-\(name)
            file_mounts:
              /data: data-\(name)
            setup: cat a.txt
            run: |
              echo "in $(pwd): $(cat a.txt) $(cat src/b.txt 2>/dev/null || echo no-b) $(ls out.log notes 2>&1 | wc -l) $(cat /data/table.csv)"
            """, URL(fileURLWithPath: spec))
        defer { _ = try? yonder("down", name) }

        let first = try yonder("launch", spec)
        #expect(first.exitCode == 0, "\(first.output)")
        for node in 0..<2 {
            #expect(first.output.contains("[node \(node)] setup: alpha"), "the setup starts in the workdir: \(first.output)")
            #expect(first.output.contains("(node \(node)) in /yonder/workdir: alpha beta 2 1,2,3"), "\(first.output)")
            #expect(first.output.contains("[node \(node)] workdir: \(project.path) → /yonder/workdir: sent 4 file(s)"), "a.txt, src/b.txt and the two ignore files: \(first.output)")
            #expect(first.output.contains("[node \(node)] mount: \(data.path) → /data: sent 1 file(s)"))
        }

        // One file changed, one deleted: only that moves (by content, not by time).
        try write("alpha 2\n", project.appendingPathComponent("a.txt"))
        try FileManager.default.removeItem(at: project.appendingPathComponent("src/b.txt"))
        try write("1,2,3\n", data.appendingPathComponent("table.csv"))  // same bytes, new time
        let second = try yonder("launch", name)
        #expect(second.exitCode == 0, "\(second.output)")
        for node in 0..<2 {
            #expect(second.output.contains("workdir: \(project.path) → /yonder/workdir: sent 1 file(s) (8 bytes), deleted 1, unchanged 2"), "\(second.output)")
            #expect(second.output.contains("[node \(node)] mount: \(data.path) → /data: sent 0 file(s) (0 bytes), deleted 0, unchanged 1"))
            #expect(second.output.contains("(node \(node)) in /yonder/workdir: alpha 2 no-b 2 1,2,3"), "\(second.output)")
        }
    }

    /// Starts `yonder ARGUMENTS` in the background with its output in a file; returns its pid
    /// and a reader of that file.
    func spawnYonder(_ arguments: [String], log: String) throws -> (pid: pid_t, output: () -> String) {
        var environment = ProcessInfo.processInfo.environment
        environment["YONDER_HOME"] = home.path
        let path = home.appendingPathComponent(log).path
        let pid = try ChildProcess.spawn(RepositoryPaths.executable("yonder").path, arguments, environment: environment, output: path)
        return (pid, { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" })
    }

    /// Waits up to `seconds` for `condition`.
    func eventually(_ seconds: Int = 120, _ condition: () throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if try condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    @Test func detachedJobsAreListedFollowedAndCancelledAndOutliveTheirTerminal() async throws {
        let name = "j\(UInt16.random(in: 0...UInt16.max))"
        let spec = try specFile(name, setup: "true", run: """
            echo "start $YONDER_JOB_ID on $YONDER_NODE_RANK"
            sleep 3
            echo "done on $YONDER_NODE_RANK" >&2
            """)
        defer { _ = try? yonder("down", name) }

        // --detach: up, start, return; the job runs on.
        let detached = try yonder("launch", "--detach", spec)
        #expect(detached.exitCode == 0, "\(detached.output)")
        let id = try #require(detached.output.firstMatch(of: /Job (\d+) runs on all 2 nodes/).map { Int($0.1)! }, "\(detached.output)")
        #expect(detached.output.contains("yonder logs \(name) --job \(id) -f"))
        let listed = try yonder("jobs", name)
        #expect(listed.exitCode == 0 && listed.output.contains("JOB") && listed.output.contains("\(id)  "), "\(listed.output)")
        #expect(listed.output.contains("running"), "\(listed.output)")

        // Followed to its end from a new client: both nodes' lines, then the job's status.
        let followed = try yonder("logs", name, "--job", String(id), "-f")
        #expect(followed.exitCode == 0, "\(followed.output)")
        for node in 0..<2 {
            #expect(followed.output.contains("(node \(node)) start \(id) on \(node)"), "\(followed.output)")
            #expect(followed.output.contains("(node \(node)) done on \(node)"), "\(followed.output)")
        }
        // One node's output alone, with --node.
        let one = try yonder("logs", name, "--job", String(id), "--node", "1")
        #expect(one.exitCode == 0 && one.output.contains("(node 1) done on 1") && !one.output.contains("(node 0)"), "\(one.output)")
        let none = try yonder("logs", name, "--job", String(id), "--node", "5")
        #expect(none.exitCode == 1 && none.output.contains("has no node 5"), "\(none.output)")
        let ended = try yonder("jobs", name, "--json")
        #expect(ended.output.contains("\"succeeded\""), "\(ended.output)")

        // A launch whose terminal goes away (SIGKILL, no Ctrl-C): the job goes on, and its
        // end is there to read.
        let long = try specFile(name, setup: "true", run: "echo begun\nsleep 4\necho survived")
        let orphaned = try spawnYonder(["launch", long], log: "orphaned.log")
        #expect(try await eventually { orphaned.output().contains("(node 1) begun") && orphaned.output().contains("(node 0) begun") }, "\(orphaned.output())")
        kill(orphaned.pid, SIGKILL)
        ChildProcess.wait(orphaned.pid)
        let second = try #require(orphaned.output().firstMatch(of: /job (\d+) on/).map { Int($0.1)! }, "\(orphaned.output())")
        #expect(second > id)
        let after = try yonder("logs", name, "--job", String(second), "-f")
        #expect(after.exitCode == 0 && after.output.contains("(node 0) survived") && after.output.contains("(node 1) survived"), "\(after.output)")

        // Cancel stops it on both nodes, and the table says so; an unknown id is named.
        let sleeper = try specFile(name, setup: "true", run: "sleep 300")
        let third = try yonder("launch", "-d", sleeper)
        let thirdID = try #require(third.output.firstMatch(of: /Job (\d+) runs/).map { Int($0.1)! }, "\(third.output)")
        let cancelled = try yonder("cancel", name, String(thirdID))
        #expect(cancelled.exitCode == 0 && cancelled.output.contains("was stopped on nodes 0, 1"), "\(cancelled.output)")
        for node in 0..<2 {
            let processes = try ChildProcess.run("/usr/bin/env", ["docker", "top", "yonder-\(name)-\(node)"])
            #expect(!processes.contains("sleep 300"), "node \(node) still runs it: \(processes)")
        }
        let table = try yonder("jobs", name)
        #expect(table.output.split(separator: "\n").contains { $0.hasPrefix("\(thirdID) ") && $0.contains("cancelled") }, "\(table.output)")
        let unknown = try yonder("logs", name, "--job", "9999")
        #expect(unknown.exitCode == 1 && unknown.output.contains("\(name) has no job 9999; yonder jobs \(name) lists its jobs"), "\(unknown.output)")
        let again = try yonder("cancel", name, String(thirdID))
        #expect(again.output.contains("had ended already (cancelled)"), "\(again.output)")
    }

    @Test func twoLaunchesAtOnceGetTwoJobsAndBothRun() async throws {
        let name = "t\(UInt16.random(in: 0...UInt16.max))"
        let spec = try specFile(name, setup: "true", run: "sleep 1\necho \"job $YONDER_JOB_ID ran\"")
        defer { _ = try? yonder("down", name) }
        let up = try yonder("up", spec)
        #expect(up.exitCode == 0, "\(up.output)")
        let first = try spawnYonder(["launch", name], log: "first.log")
        let second = try spawnYonder(["launch", name], log: "second.log")
        let statuses = [ChildProcess.wait(first.pid), ChildProcess.wait(second.pid)]
        #expect(statuses.allSatisfy { $0 == 0 }, "\(first.output())\n\(second.output())")
        let ids = [first.output(), second.output()].compactMap { $0.firstMatch(of: /job (\d+) on/).map { Int($0.1)! } }
        #expect(ids.count == 2 && Set(ids).count == 2, "two ids: \(ids)")
        for (id, output) in zip(ids, [first.output(), second.output()]) {
            #expect(output.contains("(node 0) job \(id) ran") && output.contains("(node 1) job \(id) ran"), "\(output)")
        }
    }

    @Test func artifactsComeBackAndOnlyWhatChangedMoves() async throws {
        let name = "a\(UInt16.random(in: 0...UInt16.max))"
        let project = home.appendingPathComponent("project-\(name)")
        try FileManager.default.createDirectory(at: project, withIntermediateDirectories: true)
        try "print('train')\n".write(to: project.appendingPathComponent("train.py"), atomically: true, encoding: .utf8)
        let spec = home.appendingPathComponent("\(name).yaml").path
        try """
            name: \(name)
            image_id: docker:\(ClusterTestEnvironment.image)
            num_nodes: 2
            agent: \(ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"] ?? "")
            workdir: project-\(name)
            artifacts: [outputs]
            run: |
              mkdir -p outputs/deep
              echo "rank $YONDER_NODE_RANK" > outputs/rank.txt
              [ -f outputs/deep/model.bin ] || head -c 100000 /dev/urandom > outputs/deep/model.bin
              echo "run $(ls outputs | wc -l)"
            """.write(toFile: spec, atomically: true, encoding: .utf8)
        defer { _ = try? yonder("down", name) }

        let first = try yonder("launch", spec)
        #expect(first.exitCode == 0, "\(first.output)")
        for node in 0..<2 {
            let folder = project.appendingPathComponent("outputs/node-\(node)")
            #expect(try String(contentsOf: folder.appendingPathComponent("rank.txt"), encoding: .utf8) == "rank \(node)\n")
            let model = try Data(contentsOf: folder.appendingPathComponent("deep/model.bin"))
            #expect(model.count == 100_000)
            #expect(first.output.contains("[node \(node)] artifacts: /yonder/workdir/outputs → \(folder.path): fetched 2 file(s) (100007 bytes), unchanged 0"), "\(first.output)")
        }
        // Again: the model is unchanged and stays; the outputs were not sent up as workdir files.
        let second = try yonder("launch", name)
        #expect(second.exitCode == 0, "\(second.output)")
        #expect(second.output.contains("[node 1] artifacts: /yonder/workdir/outputs → \(project.path)/outputs/node-1: fetched 0 file(s) (0 bytes), unchanged 2"), "\(second.output)")
        #expect(second.output.contains("[node 0] workdir: \(project.path) → /yonder/workdir: sent 0 file(s) (0 bytes), deleted 0, unchanged 1"), "\(second.output)")
        // A spec whose artifacts leave the workdir is refused by name.
        let bad = home.appendingPathComponent("bad-\(name).yaml").path
        try "name: \(name)\nworkdir: .\nartifacts: [../secrets]\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try yonder("launch", bad)
        #expect(refused.exitCode == 1 && refused.output.contains("artifacts: ../secrets is not a path inside the workdir"), "\(refused.output)")
    }

    @Test func aNewAgentBuildIsSwappedInPlaceKeepingTheContainerAndNamingLostObjects() async throws {
        let agent = try #require(ProcessInfo.processInfo.environment["YONDER_QUICKSTART_AGENT"], "needs YONDER_QUICKSTART_AGENT (scripts/test.sh sets it)")
        let name = "r\(UInt16.random(in: 0...UInt16.max))"
        let project = home.appendingPathComponent("project-\(name)")
        try FileManager.default.createDirectory(at: project, withIntermediateDirectories: true)
        try "data\n".write(to: project.appendingPathComponent("input.txt"), atomically: true, encoding: .utf8)
        // A rebuilt agent: the same program with other bytes, so another build id.
        let rebuilt = home.appendingPathComponent("agent-\(name)").path
        var bytes = try Data(contentsOf: URL(fileURLWithPath: agent))
        bytes.append(contentsOf: Array("rebuilt \(name)".utf8))
        try bytes.write(to: URL(fileURLWithPath: rebuilt))
        chmod(rebuilt, 0o755)
        var spec = ClusterSpec(name: name, image: ClusterTestEnvironment.image, agent: agent)
        spec.workdir = project.path
        spec.setup = "echo installed > /tmp/installed"
        let events = Mutex<[String]>([])
        let record: @Sendable (ClusterProgress) -> Void = { event in events.withLock { $0.append("\(event.step): \(event.detail)") } }

        let first = try await Cluster.up(spec)
        let firstBuild = try await first.connection().info().build
        _ = try await first.connection().create(Counter.self, .init(start: 1), name: "kept-\(name)")
        await first.close()

        let startedAt = { try ChildProcess.run("/usr/bin/env", ["docker", "inspect", "--format", "{{.State.StartedAt}}", "yonder-\(name)-0"]) }
        let before = try startedAt()
        spec.agent = rebuilt
        let second = try await Cluster.up(spec, progress: record)
        do {
            let info = try await second.connection().info()
            #expect(info.build != firstBuild, "the new build runs")
            let after = try startedAt()
            #expect(info.pid == 1 && after == before, "the agent executed the new file itself; the container was not restarted")
            let log = events.withLock { $0 }.joined(separator: "\n")
            #expect(log.contains("swapping in \(info.build ?? "")"), "\(log)")
            // Through the running agent (yonder.swap), not a command over SSH.
            #expect(log.contains("to the running agent") && !log.contains("with the swap"), "\(log)")
            #expect(!log.contains("creating yonder-\(name)-0"), "the container is not made again: \(log)")
            #expect(log.contains("setup: already done in this container"), "\(log)")
            #expect(log.contains("sent 0 file(s) (0 bytes), deleted 0, unchanged 1"), "\(log)")
            #expect(log.contains("the named objects the old one held are gone: kept-\(name)"), "\(log)")
            // What the container held is still there, and the new agent answers calls.
            let installed = try await second.connection().exec(["cat", "/tmp/installed"]).collect()
            #expect(installed.outputText == "installed\n")
            #expect(try await second.connection().run(Add.self, [2, 3]) == 5)
            await second.close()
            // Again: an agent that itself came by a swap takes the next one as well.
            bytes.append(contentsOf: Array("again".utf8))
            try bytes.write(to: URL(fileURLWithPath: rebuilt))
            let third = try await Cluster.up(spec, progress: record)
            let thirdInfo = try await third.connection().info()
            #expect(thirdInfo.build != info.build && thirdInfo.pid == 1)
            let restartedContainer = events.withLock { $0 }.contains { $0.contains("restarting the container") }
            #expect(!restartedContainer, "SIGHUP did it both times")
            #expect(try startedAt() == before)
            await third.close()

            // A build for another architecture (the ELF header says arm64) does not run on
            // the node: the running agent refuses it and goes on as it was.
            let broken = home.appendingPathComponent("broken-\(name)").path
            var foreign = bytes
            foreign[0x12] = 0xB7
            foreign[0x13] = 0x00
            try foreign.write(to: URL(fileURLWithPath: broken))
            chmod(broken, 0o755)
            var brokenSpec = spec
            brokenSpec.agent = broken
            do {
                _ = try await Cluster.up(brokenSpec)
                Issue.record("up with a build that does not run succeeded")
            } catch {
                #expect("\(error)".contains("does not run on this machine") && "\(error)".contains("the running agent goes on"), "\(error)")
                #expect("\(error)".contains("Exec format error") && "\(error)".contains("uname -m"), "\(error)")
            }
            let still = try await Cluster.attach(name)
            #expect(try await still.connection().info().build == thirdInfo.build)
            #expect(try await still.connection().run(Add.self, [1, 1]) == 2)
            await still.close()

            // A stopped container gets the new build over SSH and is started with it.
            _ = try ChildProcess.run("/usr/bin/env", ["docker", "stop", "--time", "1", "yonder-\(name)-0"])
            bytes.append(contentsOf: Array("stopped".utf8))
            try bytes.write(to: URL(fileURLWithPath: rebuilt))
            let fourth = try await Cluster.up(spec, progress: record)
            let fourthInfo = try await fourth.connection().info()
            #expect(fourthInfo.build != thirdInfo.build && fourthInfo.pid == 1)
            #expect(try await fourth.connection().run(Add.self, [2, 2]) == 4)
            await fourth.close()
            try await Cluster.down(name)
        } catch {
            await second.close()
            try? await Cluster.down(name)
            throw error
        }
    }

    /// Examples/train.yaml as the README walks through it (one epoch instead of three): the
    /// image built from Examples/train/Dockerfile, reused while that folder is unchanged and
    /// built again when it changes; the workdir on both nodes; the outputs back here.
    @Test func theTrainExampleBuildsRunsAndBringsItsOutputsBack() async throws {
        let examples = RepositoryPaths.root.appendingPathComponent("Examples")
        let copy = home.appendingPathComponent("example-\(UInt16.random(in: 0...UInt16.max))")
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: examples.appendingPathComponent("train"), to: copy.appendingPathComponent("train"))
        let name = "train\(UInt16.random(in: 0...UInt16.max))"
        var yaml = try String(contentsOf: examples.appendingPathComponent("train.yaml"), encoding: .utf8)
        yaml = yaml.replacingOccurrences(of: "name: train\n", with: "name: \(name)\nagent: \(ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"] ?? "")\n")
            .replacingOccurrences(of: "EPOCHS: \"3\"", with: "EPOCHS: \"1\"")
        let dockerfile = copy.appendingPathComponent("train/Dockerfile")
        try (try String(contentsOf: dockerfile, encoding: .utf8)).replacingOccurrences(of: "FROM yonder/debian:bookworm", with: "FROM \(ClusterTestEnvironment.image)")
            .write(to: dockerfile, atomically: true, encoding: .utf8)
        let spec = copy.appendingPathComponent("train.yaml").path
        try yaml.write(toFile: spec, atomically: true, encoding: .utf8)
        var tags: Set<String> = []
        defer {
            _ = try? yonder("down", name)
            for tag in tags { _ = try? ChildProcess.run("/usr/bin/env", ["docker", "rmi", "-f", tag]) }
        }
        func builtTag(_ output: String) -> String? {
            output.firstMatch(of: /build: built (\S+)/).map { String($0.1) }
        }

        let first = try yonder("launch", spec)
        #expect(first.exitCode == 0, "\(first.output)")
        let tag = try #require(builtTag(first.output), "\(first.output)")
        tags.insert(tag)
        for node in 0..<2 {
            #expect(first.output.contains("(node \(node)) node \(node) of 2 (toolchain 1.0), head 127.0.0.1:29500"), "\(first.output)")
            #expect(first.output.contains("(node \(node)) epoch 1 on node \(node)"))
            let weights = copy.appendingPathComponent("train/outputs/node-\(node)/model.txt")
            #expect(try String(contentsOf: weights, encoding: .utf8) == "weights of node \(node) after 1 epochs\n")
        }
        // The outputs that came back change nothing: no new build, no new container.
        let second = try yonder("launch", spec)
        #expect(second.exitCode == 0 && builtTag(second.output) == nil, "\(second.output)")
        #expect(second.output.contains("is there already (the context is unchanged)") || second.output.contains("reusing yonder-\(name)-0"), "\(second.output)")
        // A change to the image's folder: built again, and the containers made from it.
        try (try String(contentsOf: dockerfile, encoding: .utf8) + "RUN echo 'toolchain 1.1' > /opt/train/VERSION\n").write(to: dockerfile, atomically: true, encoding: .utf8)
        let third = try yonder("launch", spec)
        #expect(third.exitCode == 0, "\(third.output)")
        let newTag = try #require(builtTag(third.output), "\(third.output)")
        tags.insert(newTag)
        #expect(newTag != tag)
        #expect(third.output.contains("(node 1) node 1 of 2 (toolchain 1.1)"), "\(third.output)")
    }
}
