import ArgumentParser
import YonderCluster

struct Down: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove a cluster's containers, stop its local sshd processes and forget it.",
        discussion: """
            Says the cluster is down only once it checked that nothing of it is left. A node \
            that cannot be reached stays recorded (the others are removed): run down again once \
            it answers, or add --forget to forget it anyway, leaving what runs there.

            Examples:
              yonder down demo
              yonder down demo --forget
            """)

    @Argument(help: "The cluster's name.")
    var name: String

    @Flag(help: "Forget nodes that cannot be reached, leaving whatever still runs there.")
    var forget = false

    func run() async throws {
        try await reportingErrors {
            let left: [String]
            do {
                left = try await Cluster.down(name, forget: forget) { print($0) }
            } catch let error as ClusterError where error.code == .unknownCluster {
                // Not recorded here, but its container may still run on this machine.
                let strays = StrayContainer.onThisMachine().filter { $0.cluster == name }
                guard let advice = StrayContainer.advice(strays) else { throw error }
                throw ClusterError(.unknownCluster, "\(error.message); \(advice)")
            }
            if left.isEmpty {
                print("cluster \(name) is down")
            } else {
                print("cluster \(name) is forgotten, but not verified down")
                for problem in left { printError("yonder: \(problem)") }
            }
        }
    }
}
