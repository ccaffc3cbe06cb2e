import ArgumentParser
import YonderCluster

struct Down: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove a cluster's containers, stop its local sshd processes and forget it.",
        discussion: "Example: yonder down demo")

    @Argument(help: "The cluster's name.")
    var name: String

    func run() async throws {
        try await reportingErrors {
            try await Cluster.down(name) { print($0) }
            print("cluster \(name) is down")
        }
    }
}
