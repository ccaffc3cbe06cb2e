import ArgumentParser
import Foundation
import Yonder
import YonderCluster

struct Objects: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the named objects on a cluster's nodes.",
        discussion: "Examples:\n  yonder objects demo\n  yonder objects demo --all --json")

    @Argument(help: "The cluster's name.")
    var name: String

    @Flag(help: "Also list objects that have no name.")
    var all = false

    @Flag(help: "Print JSON, for scripts.")
    var json = false

    struct Row: Encodable {
        var node: Int
        var name: String?
        var objectType: String
        var object: String
    }

    func run() async throws {
        try await reportingErrors {
            let rows = try await withCluster(name) { cluster in
                var rows: [Row] = []
                for node in 0..<cluster.nodeCount {
                    for object in try await cluster.connection(node: node).objects() where all || object.name != nil {
                        rows.append(Row(node: node, name: object.name, objectType: object.objectType, object: object.object))
                    }
                }
                return rows
            }
            if json {
                try printJSON(rows)
                return
            }
            if rows.isEmpty {
                print(all ? "no objects on \(name)" : "no named objects on \(name) (--all lists unnamed ones too)")
                return
            }
            printTable(["NODE", "NAME", "TYPE", "ID"], rows.map { [String($0.node), $0.name ?? "-", $0.objectType, $0.object] })
        }
    }
}
