import ArgumentParser
import Foundation
import YonderCluster
import YonderSSH

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
              yonder launch train.yaml         up, then the spec's run on every node
              yonder jobs train                the launches and how they ended
              yonder status                    list clusters
              yonder ssh demo                  a shell inside node 0's container
              yonder exec demo -- uname -a     run a command in node 0's container
              yonder call demo Add '[1, 2]'    call a remote function with JSON input
              yonder objects demo              named objects on the cluster
              yonder logs demo -f              follow the agent's log
              yonder ssh-config demo --write   plain `ssh yonder-demo` then works
              yonder down demo                 remove the containers and forget the cluster
            """,
        subcommands: [Up.self, Launch.self, Jobs.self, Cancel.self, Status.self, SSH.self, Exec.self, Call.self, Objects.self, Logs.self, SSHConfig.self, Down.self])

    /// Runs the command. A usage error (an unknown option, a missing argument) is one line on
    /// standard error with where to read more, and exit status 1, like every other error.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            guard code == .validationFailure else { exit(withError: error) }
            let line = message(for: error).split(separator: "\n").first.map(String.init) ?? "invalid arguments"
            let names = Self.configuration.subcommands.map { $0._commandName }
            let arguments = CommandLine.arguments.dropFirst()
            let help = arguments.first.flatMap { names.contains($0) ? "yonder \($0) --help" : nil } ?? "yonder --help"
            printError("yonder: \(line.hasPrefix("Error: ") ? String(line.dropFirst(7)) : line) (see \(help))")
            exit(withError: ExitCode(1))
        }
    }
}

/// Attaches to cluster `name`, runs `body` with it, and closes it whatever happens.
/// What the agents' restarts and restarted containers say goes to standard error.
func withCluster<T>(_ name: String, _ body: (Cluster) async throws -> T) async throws -> T {
    let cluster = try await Cluster.attach(name) { event in
        if ["restarted", "start", "reconnect"].contains(event.step) { printError("yonder: \(event.detail)") }
    }
    do {
        let value = try await body(cluster)
        await cluster.close()
        return value
    } catch {
        await cluster.close()
        throw error
    }
}

/// Prints `value` as JSON with sorted keys, indented unless `pretty` is false.
func printJSON(_ value: some Encodable, pretty: Bool = true) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .iso8601
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

/// Prints rows under a header, each column as wide as its widest cell.
func printTable(_ header: [String], _ rows: [[String]]) {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    for row in all {
        print(row.enumerated().map { column, cell in
            column == row.count - 1 ? cell : cell.padding(toLength: widths[column] + 2, withPad: " ", startingAt: 0)
        }.joined())
    }
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

    @Option(name: .customLong("node"), help: "The node, from 0 (default 0).")
    var chosenNode: Int?

    /// The node picked, 0 when none was named.
    var node: Int { chosenNode ?? 0 }

    /// The cluster's and the node's records and an SSH session to the node (not through its
    /// agent).
    func connect() async throws -> (ClusterState, ClusterState.NodeState, SSHSession) {
        let state = try ClusterState.load(name)
        let record = try state.node(node)
        return (state, record, try await Cluster.sshSession(to: record))
    }
}
