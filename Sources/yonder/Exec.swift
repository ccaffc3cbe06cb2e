import ArgumentParser
import Foundation
import Yonder
import YonderCluster

struct Exec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a command in a node's container through the agent, streaming its output.",
        discussion: "Exits with the command's status.\n\nExample: yonder exec demo --node 1 -- nvidia-smi")

    @OptionGroup var target: NodeOptions

    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.")
    var command: [String] = []

    func run() async throws {
        var status: Int32 = 0
        try await reportingErrors {
            guard !command.isEmpty else { throw ValidationError("give the command after --, e.g. yonder exec \(target.name) -- uname -a") }
            status = try await withCluster(target.name) { cluster in
                var status: Int32 = 0
                for try await event in try await cluster.connection(node: target.node).exec(command) {
                    switch event {
                    case .standardOutput(let bytes): FileHandle.standardOutput.write(Data(bytes))
                    case .standardError(let bytes): FileHandle.standardError.write(Data(bytes))
                    case .exit(let exit): status = Int32(exit.exitCode ?? (128 + (exit.signal ?? 0)))
                    }
                }
                return status
            }
        }
        if status != 0 { throw ExitCode(status) }
    }
}
