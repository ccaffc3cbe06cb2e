import ArgumentParser
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The `yonder` command: manage clusters from the terminal.
@main
struct YonderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yonder",
        abstract: "Run Swift code in Docker containers on remote machines.",
        discussion: """
            Examples:
              yonder up cluster.yaml           bring a cluster up (or reuse what runs)
              yonder status                    list clusters
              yonder ssh demo                  a shell inside node 0's container
              yonder exec demo -- uname -a     run a command in node 0's container
              yonder down demo                 remove the containers and forget the cluster
            """,
        subcommands: [Up.self, Status.self, SSH.self, Exec.self, Down.self])
}

/// Prints to standard error.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Runs `body`; an error goes to standard error and becomes exit status 1.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        printError("yonder: \(error)")
        throw ExitCode(1)
    }
}

/// The options that pick one node of one cluster, shared by `ssh` and `exec`.
struct NodeOptions: ParsableArguments {
    @Argument(help: "The cluster's name.")
    var name: String

    @Option(help: "The node, from 0.")
    var node = 0
}
