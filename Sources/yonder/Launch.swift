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
            MASTER_PORT. Ctrl-C stops the commands on every node.

            Examples:
              yonder launch Examples/train.yaml
              yonder launch train
            """)

    @Argument(help: "The cluster spec (YAML), or the name of a running cluster.")
    var spec: String

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
            let colours = isatty(1) == 1
            let out = Mutex(())
            let job = Task {
                try await cluster.runEverywhere(script) { node, isError, line in
                    let prefix = colours ? "\u{1B}[\(31 + node % 6)m(node \(node))\u{1B}[0m " : "(node \(node)) "
                    out.withLock { _ in
                        let text = Data((prefix + line + "\n").utf8)
                        (isError ? FileHandle.standardError : FileHandle.standardOutput).write(text)
                    }
                }
            }
            let interrupts = Interrupts(message: "interrupted; stopping the run on every node of \(spec.name)") { job.cancel() }
            do {
                let statuses = try await job.value
                interrupts.remove()
                for (node, status) in statuses.enumerated() where !status.succeeded {
                    printError("yonder: node \(node): the run ended with \(status)")
                }
                exitStatus = statuses.first { !$0.succeeded }?.shellStatus ?? 0
            } catch {
                interrupts.remove()
                await cluster.close()
                if interrupts.interrupted {
                    printError("yonder: the run was stopped on every node of \(spec.name) (yonder launch \(spec.name) runs it again)")
                    exitStatus = interrupts.exitStatus
                    return
                }
                throw error
            }
            await cluster.close()
        }
        if exitStatus != 0 { throw ExitCode(exitStatus) }
    }
}
