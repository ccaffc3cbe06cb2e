import ArgumentParser
import Foundation
import Yonder
import YonderCluster

#if canImport(Glibc)
import Glibc
#endif

struct Exec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command in a node's container through the agent, streaming its output.",
        discussion: """
            Exits with the command's status. Standard input, when it is not a terminal, is read \
            to its end first and given to the command (-n gives it none, like ssh -n).

            Examples:
              yonder exec demo --node 1 -- nvidia-smi
              yonder exec demo -- sh -c 'cat > /tmp/data.csv' < data.csv
            """)

    @OptionGroup var target: NodeOptions

    @Flag(name: .short, help: "Give the command no standard input (do not read this one's).")
    var noInput = false

    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.")
    var command: [String] = []

    func run() async throws {
        var status: Int32 = 0
        try await reportingErrors {
            guard !command.isEmpty else { throw ValidationError("give the command after --, e.g. yonder exec \(target.name) -- uname -a") }
            // Read before attaching: the agent gets it in one piece with the call.
            let input = noInput || isatty(0) == 1 ? [] : [UInt8](FileHandle.standardInput.readDataToEndOfFile())
            status = try await withCluster(target.name) { cluster in
                var status: Int32 = 0
                for try await event in try await cluster.connection(node: target.node).exec(command, standardInput: input) {
                    switch event {
                    case .standardOutput(let bytes): FileHandle.standardOutput.write(Data(bytes))
                    case .standardError(let bytes): FileHandle.standardError.write(Data(bytes))
                    case .exit(let exit): status = exit.shellStatus
                    }
                }
                return status
            }
        }
        if status != 0 { throw ExitCode(status) }
    }
}
