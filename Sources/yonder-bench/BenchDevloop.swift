import ArgumentParser
import Foundation
import QuickStartShared
import Synchronization
import Yonder
import YonderCluster
import YonderLocalServers
#if canImport(Glibc)
import Glibc
#endif

/// `yonder-bench devloop`: the edit–run loop on a local cluster. After a change to the
/// agent, `up` puts the new build on the node and restarts it, and the next call runs it;
/// each part is timed, and Yonder's share is everything but the compiler's.
struct Devloop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devloop",
        abstract: "The edit–run loop: rebuild, upload, restart, reconnect and first call after a change to the agent.",
        discussion: """
            Brings up a one-node local cluster with the quickstart agent (--agent or \
            YONDER_QUICKSTART_AGENT, static), whose spec has a workdir and a setup as a task \
            would, then runs --rounds rounds. Each round makes a new agent build and times \
            `Cluster.up` with it (the node already holds the old one): the swap, that is the new \
            executable sent to the running agent through its tunnel, which checks that it runs and \
            executes it in place, keeping its port and token (yonder.swap); the reconnect; and \
            the rest of up (SSH, the probe, the workdir check, the setup check), then the first \
            call of Add on the new agent.

            Without --package the new build is the agent with a few random bytes appended (the \
            same program, another build id), so only Yonder's share is measured. With \
            --package, --product and --edit, each round appends a comment line to the file \
            --edit, rebuilds the product static with `swift build`, timed, and uses it; the \
            line is taken out at the end. A comment leaves the executable as it was, so only \
            the first such round swaps an agent; the report says how many did not.

            Example: swift run -c release yonder-bench devloop --agent .build-static/release/quickstart-agent
            """)

    @Option(help: "The static quickstart agent; defaults to YONDER_QUICKSTART_AGENT.")
    var agent: String?

    @Option(help: "The image to run (already pulled).")
    var image = "yonder/debian:bookworm"

    @Option(help: "Rounds measured (the median of each part is reported).")
    var rounds = 5

    @Option(help: "A package whose executable product is the agent, rebuilt each round.")
    var package: String?

    @Option(help: "The agent product of --package.")
    var product = "quickstart-agent"

    @Option(help: "A Swift file of --package that each round changes by one line.")
    var edit: String?

    @Flag(help: "Print the results as JSON.")
    var json = false

    func validate() throws {
        if (package == nil) != (edit == nil) { throw ValidationError("give --package and --edit together") }
        guard rounds > 0 else { throw ValidationError("--rounds must be positive") }
    }

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        guard let agent = agent ?? ProcessInfo.processInfo.environment["YONDER_QUICKSTART_AGENT"] else {
            throw ValidationError("give --agent PATH (the static quickstart agent) or set YONDER_QUICKSTART_AGENT")
        }
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-bench-devloop-\(getpid())")
        setenv("YONDER_HOME", home.path, 1)
        let project = home.appendingPathComponent("project")
        try FileManager.default.createDirectory(at: project, withIntermediateDirectories: true)
        try "print(1)\n".write(to: project.appendingPathComponent("train.py"), atomically: true, encoding: .utf8)
        var spec = ClusterSpec(name: "bench-devloop", image: image, agent: agent)
        spec.workdir = project.path
        spec.setup = "true"
        let original = edit.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
        defer {
            if let edit, let original { try? original.write(toFile: edit, atomically: true, encoding: .utf8) }
            try? FileManager.default.removeItem(at: home)
        }
        try await takingDownOnFailure(spec.name) { [spec] in try await measure(spec, agent: agent, home: home) }
    }

    private func measure(_ spec: ClusterSpec, agent: String, home: URL) async throws {
        log("first up (starts sshd, uploads the agent, runs the setup)")
        let first = try await Cluster.up(spec)
        await first.close()
        var rows: [DevloopRound] = []
        let nodeHome = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        for round in 0..<rounds {
            var spec = spec
            var buildSeconds: Double?
            if let package, let edit {
                log("round \(round + 1): one line more in \(edit), swift build of \(product)")
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: edit))
                try handle.seekToEnd()
                try handle.write(contentsOf: Data("// devloop round \(round + 1) \(UInt64.random(in: 0...UInt64.max))\n".utf8))
                try handle.close()
                let product = AgentProduct(product: self.product, package: package)
                let start = ContinuousClock.now
                spec.agent = try await product.build(environment: ProcessInfo.processInfo.environment) { _ in }
                buildSeconds = seconds(ContinuousClock.now - start)
            } else {
                let rebuilt = home.appendingPathComponent("agent-\(round)").path
                var bytes = try Data(contentsOf: URL(fileURLWithPath: agent))
                bytes.append(contentsOf: (0..<16).map { _ in UInt8.random(in: 0...255) })
                try bytes.write(to: URL(fileURLWithPath: rebuilt))
                chmod(rebuilt, 0o755)
                spec.agent = rebuilt
            }
            log("round \(round + 1): up with the new build, then the first call")
            let parts = Mutex<[String: Double]>([:])
            let start = ContinuousClock.now
            let cluster = try await Cluster.up(spec) { event in
                guard let elapsed = event.elapsed else { return }
                let key: String? = switch event.step {
                case "restart": "restart"
                case "connect": "connect"
                default: nil
                }
                if let key { parts.withLock { $0[key, default: 0] += seconds(elapsed) } }
            }
            let upSeconds = seconds(ContinuousClock.now - start)
            let callStart = ContinuousClock.now
            let sum = try await cluster.connection().run(Add.self, [round, 1])
            let callSeconds = seconds(ContinuousClock.now - callStart)
            guard sum == round + 1 else { throw ValidationError("the first call answered \(sum), not \(round + 1)") }
            let build = cluster.state.nodes[0].agentBuild
            await cluster.close()
            try? FileManager.default.removeItem(atPath: "\(nodeHome)/.yonder/agents/\(build)")
            let measured = parts.withLock { $0 }
            let swap = measured["restart"] ?? 0
            let connect = measured["connect"] ?? 0
            rows.append(DevloopRound(
                buildSeconds: buildSeconds, swapSeconds: swap,
                reconnectSeconds: connect, otherUpSeconds: max(0, upSeconds - swap - connect),
                firstCallSeconds: callSeconds, yonderSeconds: upSeconds + callSeconds))
        }
        try await Cluster.down(spec.name)
        try DevloopReport(rounds: rows, agentMegabytes: Double(fileSize(agent)) / 1e6).emit(json: json)
    }

    private func fileSize(_ path: String) -> UInt64 {
        ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? NSNumber)?.uint64Value ?? 0
    }

    private func log(_ text: String) {
        FileHandle.standardError.write(Data("[yonder-bench devloop] \(text)\n".utf8))
    }
}

/// One round of the loop, in seconds.
struct DevloopRound: Codable {
    var buildSeconds: Double?
    /// `yonder.swap` through the old agent's tunnel: the new build sent, checked that it
    /// runs, and executed in place.
    var swapSeconds: Double
    var reconnectSeconds: Double
    var otherUpSeconds: Double
    var firstCallSeconds: Double
    /// Everything but the build: up with the new agent, then the first call.
    var yonderSeconds: Double
}

struct DevloopReport: BenchReport {
    var rounds: [DevloopRound]
    var agentMegabytes: Double

    func printTable() {
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        func row(_ name: String, _ values: [Double], _ note: String = "") {
            guard !values.isEmpty else { return }
            print(name.padding(toLength: 46, withPad: " ", startingAt: 0)
                + String(format: "%.3f s (%.3f–%.3f)%@", median(values), values.min()!, values.max()!, note))
        }
        print(String(format: "agent %.1f MB, %d rounds: median (min–max)", agentMegabytes, rounds.count))
        row("swift build after a one-line change", rounds.compactMap(\.buildSeconds))
        row("swap: send via tunnel, check, exec in place", rounds.map(\.swapSeconds))
        row("reconnect (tunnel, handshake)", rounds.map(\.reconnectSeconds))
        row("rest of up (SSH, probe, workdir, setup check)", rounds.map(\.otherUpSeconds))
        row("first call on the new agent", rounds.map(\.firstCallSeconds))
        row("Yonder's share (all but the build)", rounds.map(\.yonderSeconds), " (target < 1 s)")
        let same = rounds.filter { $0.swapSeconds == 0 }.count
        if same > 0 {
            print("\(same) of \(rounds.count) rounds built the same executable as the round before (an edit the compiler drops, such as a comment): nothing was swapped in them")
        }
    }
}
