import ArgumentParser
import Foundation
import Yonder
import YonderCluster

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List clusters, or show one cluster's nodes.",
        discussion: """
            Without a name, lists the recorded clusters (no network), and names the containers \
            of Yonder clusters on this machine's Docker that no recorded cluster accounts for, \
            with what to run. With one, visits each \
            node: its address, the container's state, the agent's build and uptime, and the \
            named objects; exits with status 1 when a node cannot be reached or its container \
            or agent is not running, saying what to run.

            Examples:
              yonder status
              yonder status demo --json
            """)

    @Argument(help: "A cluster's name; all clusters when omitted.")
    var name: String?

    @Flag(help: "Print JSON, for scripts.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            guard let name else {
                let states = try ClusterState.knownNames().map { try ClusterState.load($0) }
                if json {
                    try printJSON(states)
                    return
                }
                if states.isEmpty {
                    print("no clusters (yonder up SPEC.yaml brings one up)")
                } else {
                    printTable(["NAME", "PROVIDER", "NODES", "IMAGE", "UPDATED"], states.map {
                        [$0.spec.name, $0.spec.provider.rawValue, String($0.nodes.count), $0.spec.image ?? $0.spec.imageBuild.map { "built from \($0.context)" } ?? "-",
                         $0.updatedAt.formatted(date: .abbreviated, time: .shortened)]
                    })
                }
                if let advice = StrayContainer.advice(StrayContainer.onThisMachine()) { printError("yonder: \(advice)") }
                return
            }
            let report = try await Cluster.report(name)
            let troubled = report.nodes.filter { $0.problem != nil }
            if json {
                try printJSON(report)
                if !troubled.isEmpty { throw ExitCode(1) }
                return
            }
            print("cluster \(report.name): \(report.provider.rawValue), \(report.nodes.count) node(s), image \(report.image ?? "-")")
            printTable(["NODE", "ADDRESS", "CONTAINER", "STATE", "AGENT", "UPTIME", "OBJECTS"], report.nodes.map { node in
                let named = node.objects.compactMap { object in object.name.map { "\($0) (\(object.objectType))" } }
                let unnamed = node.objects.count - named.count
                let objects = (named + (unnamed > 0 ? ["\(unnamed) unnamed"] : [])).joined(separator: ", ")
                return [
                    String(node.index), node.address, node.onHost ? "- (on the node)" : node.container, node.containerState,
                    node.agentVersion.map { "\($0) build \(node.agentBuild ?? "?")" } ?? "-",
                    node.agentUptime.map(Self.duration) ?? "-", objects.isEmpty ? "-" : objects,
                ]
            })
            for node in report.nodes {
                if let instance = node.instance { print("node \(node.index): instance \(instance)") }
                if let autostop = node.autostop {
                    let idle = node.idleSeconds.map { "idle \(Self.duration($0)); " } ?? ""
                    let watching = node.autostopWatching == false && node.containerState == "running"
                        ? " (its watcher is not running; `yonder up \(report.name)` starts it)" : ""
                    print("node \(node.index): \(idle)autostop after \(autostop)\(watching)")
                }
            }
            for node in troubled {
                printError("yonder: node \(node.index): \(node.problem ?? "")")
            }
            if !troubled.isEmpty { throw ExitCode(1) }
        }
    }

    /// `42s`, `5m12s`, `3h04m`, `2d03h`.
    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds)
        let (days, hours, minutes, rest) = (total / 86400, total / 3600 % 24, total / 60 % 60, total % 60)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : String(value) }
        if days > 0 { return "\(days)d\(two(hours))h" }
        if hours > 0 { return "\(hours)h\(two(minutes))m" }
        if minutes > 0 { return "\(minutes)m\(two(rest))s" }
        return "\(rest)s"
    }
}
