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
            SKYPILOT_DOCKER_* names); the agent from the spec's agent field or YONDER_AGENT. \
            Given the name of a known cluster instead of a file, brings it up again with the \
            spec it was brought up with. Ctrl-C undoes what this up made (a second one quits \
            at once).

            Examples:
              yonder up Examples/quickstart.yaml
              yonder up quickstart
            """)

    @Argument(help: "The cluster spec (YAML), or the name of a known cluster.")
    var spec: String

    func run() async throws {
        var interruptedStatus: Int32?
        try await reportingErrors {
            let spec = try Self.spec(from: spec)
            let printer = ClusterProgressPrinter(terminal: isatty(1) == 1)
            let up = Task { try await Cluster.up(spec) { printer.print($0) } }
            let interrupts = Interrupts(message: "interrupted; undoing what this up made") { up.cancel() }
            do {
                let cluster = try await up.value
                interrupts.remove()
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
                interrupts.remove()
                printer.finish()
                if interrupts.interrupted {
                    interruptedStatus = interrupts.exitStatus
                    printError("yonder: up of \(spec.name) was interrupted; what it made was removed (yonder up \(spec.name) starts again)")
                    return
                }
                throw error
            }
        }
        if let interruptedStatus { throw ExitCode(interruptedStatus) }
    }

    /// The spec in the file `argument`, or, when there is no such file, the recorded spec of
    /// the known cluster of that name.
    static func spec(from argument: String) throws -> ClusterSpec {
        if !FileManager.default.fileExists(atPath: argument), !argument.contains("/"), ClusterState.knownNames().contains(argument) {
            return try ClusterState.load(argument).spec
        }
        return try ClusterSpec.load(from: argument)
    }
}
