import Foundation
import QuickStartShared
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
        #expect(output().contains("the run was stopped on every node of \(name)"), "\(output())")
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
}
