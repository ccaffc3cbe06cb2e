import ArgumentParser
import Foundation
import YonderCluster
import YonderSSH

#if canImport(Glibc)
import Glibc
#endif

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the agent's log from a node's container.",
        discussion: """
            The agent logs to its container's output, so this is docker logs on the node (for \
            an agent without a container, its log file in ~/.yonder/run on the node).

            Examples:
              yonder logs demo
              yonder logs demo --node 1 -f
            """)

    @OptionGroup var target: NodeOptions

    @Flag(name: [.short, .long], help: "Keep printing new lines until interrupted.")
    var follow = false

    @Option(help: "Only the last N lines.")
    var tail: Int?

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        var status: Int32 = 0
        try await reportingErrors {
            let (_, node, session) = try await target.connect()
            let logs = try await session.execute(node.logsCommand(follow: follow, tail: tail) + " 2>&1")
            do {
                for try await chunk in logs.stdout {
                    FileHandle.standardOutput.write(Data(chunk))
                }
                status = try await logs.exitStatus().shellStatus
            } catch {
                await session.close()
                throw error
            }
            await session.close()
            if status != 0 { printError("yonder: reading the log failed on node \(target.node) of \(target.name) (status \(status)); yonder status \(target.name) tells whether the agent runs") }
        }
        if status != 0 { throw ExitCode(status) }
    }
}
