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
            an agent without a container, its log file in ~/.yonder/run on the node). With \
            --job, the output of a job (a `yonder launch`) on every node instead, each line \
            prefixed with its node; with -f until the job ends, and the exit status is the \
            job's. Ctrl-C stops the following, not the job.

            Examples:
              yonder logs demo
              yonder logs demo --node 1 -f
              yonder logs train --job 3 -f
            """)

    @OptionGroup var target: NodeOptions

    @Flag(name: [.short, .long], help: "Keep printing new lines until interrupted.")
    var follow = false

    @Option(help: "Only the last N lines.")
    var tail: Int?

    @Option(help: "Print this job's output (from every node, prefixed, or from --node only) instead of the agent's log.")
    var job: Int?

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        var status: Int32 = 0
        if let job {
            if tail != nil { throw ValidationError("--tail is for the agent's log; a job's output comes whole") }
            try await reportingErrors {
                let cluster = try await Cluster.attach(target.name) { event in
                    if ["restarted", "start", "reconnect"].contains(event.step) { printError("yonder: \(event.detail)") }
                }
                do {
                    status = try await Launch.follow(
                        cluster, job: job, name: target.name, follow: follow, stopOnInterrupt: false, node: target.chosenNode).status
                } catch {
                    await cluster.close()
                    throw error
                }
                await cluster.close()
            }
            if status != 0 { throw ExitCode(status) }
            return
        }
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
