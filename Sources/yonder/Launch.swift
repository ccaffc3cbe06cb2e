import ArgumentParser
import Foundation
import Synchronization
import Yonder
import YonderCluster

#if canImport(Glibc)
import Glibc
#endif

struct Launch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring a cluster up from a spec and run its `run` commands on every node.",
        discussion: """
            As `sky launch`: given a spec file, brings the cluster up (running its setup once \
            per container), then runs the spec's run commands (or dstack's commands) on every \
            node at once, with /bin/sh in the container. Given the name of a running cluster, \
            runs them again without the setup, as `sky exec`. Each line of output is prefixed \
            with its node, `(node N)`, in colour on a terminal; the exit status is that of the \
            lowest-ranked node that failed. The environment has YONDER_NODE_RANK, YONDER_NUM_NODES, \
            YONDER_NODE_IPS (one per line, in rank order), YONDER_HEAD_IP, SkyPilot's \
            SKYPILOT_NODE_RANK, SKYPILOT_NUM_NODES, SKYPILOT_NODE_IPS, and MASTER_ADDR and \
            MASTER_PORT, and YONDER_JOB_ID.

            Each launch is a job, with the same id on every node, that goes on if the \
            terminal goes away: Ctrl-C stops it on every node, --detach returns at once. \
            `yonder logs NAME --job ID -f` follows a job, `yonder jobs NAME` lists them and \
            `yonder cancel NAME ID` stops one.

            Examples:
              yonder launch Examples/train.yaml
              yonder launch train
              yonder launch --detach train && yonder logs train --job 3 -f
            """)

    @Argument(help: "The cluster spec (YAML), or the name of a running cluster.")
    var spec: String

    @Flag(name: [.short, .long], help: "Start the run as a job and return; `yonder logs NAME --job ID -f` follows it.")
    var detach = false

    func run() async throws {
        var exitStatus: Int32 = 0
        try await reportingErrors {
            let spec = try Up.spec(from: spec)
            guard let script = spec.run else {
                throw ValidationError("the spec of \(spec.name) has no run (or commands): nothing to launch; add `run: |` with the commands, or use yonder up")
            }
            let known = ClusterState.knownNames().contains(spec.name) && !FileManager.default.fileExists(atPath: self.spec)
            let printer = ClusterProgressPrinter(terminal: isatty(1) == 1)
            let cluster: Cluster
            if known {
                cluster = try await Cluster.attach(spec.name)
                // The edit–run loop: what changed in the workdir moves before the run.
                do {
                    try await cluster.syncFiles { printer.print($0) }
                } catch {
                    await cluster.close()
                    throw error
                }
            } else {
                cluster = try await Cluster.up(spec) { printer.print($0) }
            }
            let name = spec.name
            let id: Int
            do {
                id = try await cluster.startJob(script)
            } catch {
                await cluster.close()
                throw error
            }
            if detach {
                await cluster.close()
                print("""
                    Job \(id) runs on \(cluster.nodeCount == 1 ? "the node" : "all \(cluster.nodeCount) nodes") of \(name).
                      yonder logs \(name) --job \(id) -f   follows its output
                      yonder jobs \(name)                lists the jobs and how they ended
                      yonder cancel \(name) \(id)           stops it
                    """)
                return
            }
            printError("yonder: job \(id) on \(name); Ctrl-C stops it, and it goes on if this terminal goes away (yonder logs \(name) --job \(id) -f)")
            do {
                let (status, interrupted) = try await Self.follow(cluster, job: id, name: name, stopOnInterrupt: true)
                exitStatus = status
                // Outputs come back once the run has ended, whether it failed or not.
                if !interrupted { try await cluster.fetchArtifacts { printer.print($0) } }
            } catch {
                await cluster.close()
                throw error
            }
            await cluster.close()
        }
        if exitStatus != 0 { throw ExitCode(exitStatus) }
    }

    /// Prints job `id`'s output on every node, prefixed `(node N)`, until it has ended, then
    /// what failed; returns the exit status of the lowest-ranked node that failed. The first
    /// Ctrl-C cancels the job on every node if `stopOnInterrupt`, else stops following; then
    /// the status is the signal's, and `interrupted` is true.
    static func follow(
        _ cluster: Cluster, job id: Int, name: String, follow: Bool = true, stopOnInterrupt: Bool, node only: Int? = nil
    ) async throws -> (status: Int32, interrupted: Bool) {
        let colours = isatty(1) == 1
        let out = Mutex(())
        let reading = Task {
            try await cluster.jobOutput(id, follow: follow, node: only) { node, line in
                let prefix = colours ? "\u{1B}[\(31 + node % 6)m(node \(node))\u{1B}[0m " : "(node \(node)) "
                out.withLock { _ in FileHandle.standardOutput.write(Data((prefix + line + "\n").utf8)) }
            }
        }
        let message = stopOnInterrupt
            ? "interrupted; stopping job \(id) on every node of \(name)"
            : "interrupted; job \(id) goes on (yonder cancel \(name) \(id) stops it)"
        let interrupts = Interrupts(message: message) { reading.cancel() }
        let job: ClusterJob
        do {
            job = try await reading.value
            interrupts.remove()
        } catch {
            interrupts.remove()
            if interrupts.interrupted {
                if stopOnInterrupt {
                    let cancelled = try? await cluster.cancelJob(id)
                    let nodes = cancelled.map { $0.nodes.count == cluster.nodeCount ? "every node" : "nodes \($0.nodes.keys.sorted().map(String.init).joined(separator: ", "))" } ?? "every node"
                    printError("yonder: the run (job \(id)) was stopped on \(nodes) of \(name) (yonder launch \(name) runs it again)")
                }
                return (interrupts.exitStatus, true)
            }
            if error is ClusterError { throw error }
            throw ClusterError(.agentFailed, "following job \(id) failed: \(error); the job goes on: yonder logs \(name) --job \(id) -f follows it again, yonder jobs \(name) tells how it stands")
        }
        for (node, info) in job.nodes.sorted(by: { $0.key < $1.key }) where info.state != .succeeded && info.state != .running {
            printError("yonder: node \(node): \(Self.describe(info))")
        }
        guard let failure = job.firstFailure else { return (0, false) }
        return (failure.job.status?.shellStatus ?? 1, false)
    }

    /// How a node's job ended, in words.
    static func describe(_ job: JobInfo) -> String {
        switch job.state {
        case .running: return "the run goes on"
        case .succeeded: return "the run ended with exit code 0"
        case .failed: return "the run ended with \(job.status.map(String.init(describing:)) ?? "an unknown status")"
        case .cancelled: return "the run was cancelled"
        case .lost: return "the run was lost: the agent that ran it stopped (its container restarted?) before it ended"
        }
    }
}
