import ArgumentParser

/// Benchmarks of Yonder, each with its baseline measured in the same run.
@main
struct YonderBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "yonder-bench",
        abstract: "Measure Yonder's call latency, tunnels and transfers against a baseline.",
        subcommands: [Local.self, SSH.self, E2E.self, Isolation.self, Devloop.self, Instructions.self])
}
