import ArgumentParser
import Foundation
import YonderCluster

#if canImport(Glibc)
import Glibc
#endif

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring a cluster up from a spec file, or reuse what already runs.",
        discussion: """
            Prints each step with its timing; on a terminal, uploads and image pulls show a \
            progress bar. Registry credentials come from \
            YONDER_DOCKER_USERNAME / YONDER_DOCKER_PASSWORD / YONDER_DOCKER_SERVER (or SkyPilot's \
            SKYPILOT_DOCKER_* names); the agent from the spec's agent field or YONDER_AGENT.

            Examples:
              yonder up Examples/quickstart.yaml
              yonder up quickstart          again, with the spec it was brought up with
            """)

    /// The spec in file `argument`, or, when no such file exists, the recorded spec of the
    /// cluster of that name.
    static func spec(_ argument: String) throws -> ClusterSpec {
        if !FileManager.default.fileExists(atPath: argument), let known = try? ClusterState.load(argument) {
            return known.spec
        }
        return try ClusterSpec.load(from: argument)
    }

    @Argument(help: "The cluster spec (YAML), or the name of a known cluster to bring up again with the spec it was brought up with.")
    var spec: String

    func run() async throws {
        try await reportingErrors {
            let spec = try Self.spec(self.spec)
            let printer = ClusterProgressPrinter(terminal: isatty(1) == 1)
            do {
                let cluster = try await Cluster.up(spec) { printer.print($0) }
                // A node may have a new address (a restarted local sshd): keep the block true.
                if SSHConfigFile.contains(cluster: spec.name) {
                    do {
                        try SSHConfigFile.install(try await cluster.sshConfig(), cluster: spec.name)
                    } catch {
                        await cluster.close()
                        throw error
                    }
                    print("updated the block for \(spec.name) in \(SSHConfigFile.defaultPath)")
                }
                await cluster.close()
            } catch {
                printer.finish()
                throw error
            }
        }
    }
}
