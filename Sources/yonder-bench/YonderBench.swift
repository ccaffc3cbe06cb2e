import ArgumentParser

/// Benchmarks of Yonder, each with its baseline measured in the same run.
@main
struct YonderBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yonder-bench",
        abstract: "Measure Yonder's call latency, tunnels and transfers against a baseline.",
        subcommands: [Local.self, SSH.self, E2E.self, Isolation.self, Devloop.self, Instructions.self])
}

import YonderCluster

/// Runs a bench's `body`, which brings up the cluster `name`, and takes that cluster down if
/// the body fails or is interrupted: the first Ctrl-C or SIGTERM cancels the body, the cluster
/// goes down (its container, and the private sshd of a local one), and the bench exits with
/// 130 or 143; a second signal quits at once.
func takingDownOnFailure(_ name: String, _ body: @escaping @Sendable () async throws -> Void) async throws {
    let work = Task { try await body() }
    let interrupts = Interrupts(program: "yonder-bench", message: "interrupted; taking the cluster \(name) down") { work.cancel() }
    defer { interrupts.remove() }
    do {
        try await work.value
    } catch {
        // In a task of its own, which the cancelled body's cancellation does not reach.
        _ = await Task { try? await Cluster.down(name) }.value
        if interrupts.interrupted { throw ExitCode(interrupts.exitStatus) }
        throw error
    }
}
