import ArgumentParser
import Foundation
import YonderCluster

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List clusters, or show one cluster's nodes.",
        discussion: "Examples:\n  yonder status\n  yonder status demo --json")

    @Argument(help: "A cluster's name; all clusters when omitted.")
    var name: String?

    @Flag(help: "Print JSON, for scripts.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            let states = try (name.map { [$0] } ?? ClusterState.knownNames()).map { try ClusterState.load($0) }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                encoder.dateEncodingStrategy = .iso8601
                print(String(decoding: try encoder.encode(states), as: UTF8.self))
                return
            }
            if states.isEmpty {
                print("no clusters (yonder up SPEC.yaml brings one up)")
                return
            }
            if name == nil {
                print("NAME".padding(toLength: 20, withPad: " ", startingAt: 0) + "PROVIDER  NODES  IMAGE")
                for state in states {
                    print(state.spec.name.padding(toLength: 20, withPad: " ", startingAt: 0)
                        + state.spec.provider.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)
                        + String(state.nodes.count).padding(toLength: 7, withPad: " ", startingAt: 0)
                        + (state.spec.image ?? "-"))
                }
                return
            }
            for (index, node) in states[0].nodes.enumerated() {
                print("node \(index): \(node.user)@\(node.host):\(node.port)  container \(node.container)  agent port \(node.agentPort)  build \(node.agentBuild)")
            }
        }
    }
}
