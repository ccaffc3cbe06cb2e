import ArgumentParser
import Foundation
import QuickStartShared
import Yonder
import YonderLocalServers

/// `yonder-bench isolation`: what running user code in worker processes costs per call.
struct Isolation: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The cost per call of running user code in worker processes.",
        discussion: """
            Starts an agent with user functions and objects (quickstart-agent, beside this \
            program, or --agent) twice on loopback: with --isolation process (the default: user \
            code in worker processes, where a trap is contained) and with --isolation none (user \
            code in the agent itself). Measures on each, in alternating rounds, the p50 and p99 of \
            a no-op user function call (Add with no numbers), a method call on an object (Counter.increment(by: 0)), and \
            yonder.ping (a built-in, which never leaves the agent).

            Example: swift build -c release --product quickstart-agent && \
            swift run -c release yonder-bench isolation
            """)

    @Option(help: "Round trips measured for each figure in each round.")
    var iterations = 5_000

    @Option(help: "Round trips run before measuring.")
    var warmup = 1_000

    @Option(help: "Rounds; each measures both modes, and the median of the rounds is reported.")
    var rounds = 3

    @Option(help: "An agent executable that has the quick start's Add function and Counter object.")
    var agent: String?

    @Flag(help: "Print the results as JSON.")
    var json = false

    func run() async throws {
        let executable = agent ?? LocalAgent.besideThisProgram("quickstart-agent")
        var figures: [String: [Percentiles]] = [:]
        for _ in 0..<rounds {
            for mode in ["process", "none"] {
                let process = try LocalAgent.start(executable: executable, arguments: ["--isolation", mode])
                defer { process.stop() }
                var configuration = Connection.Configuration()
                configuration.keepAliveInterval = nil
                let connection = try await process.connect(configuration: configuration)
                figures["\(mode) function", default: []].append(
                    try await Local.pingLatency(connection, iterations: iterations, warmup: warmup, function: "Add", arguments: []))
                let counter = try await connection.create(Counter.self, .init(start: 0))
                figures["\(mode) method", default: []].append(
                    try await Self.methodLatency(connection, counter, iterations: iterations, warmup: warmup))
                figures["\(mode) ping", default: []].append(
                    try await Local.pingLatency(connection, iterations: iterations, warmup: warmup))
                figures["\(mode) create and release", default: []].append(try await Self.createLatency(connection))
                await connection.close()
            }
        }
        func median(_ key: String) -> Percentiles {
            let all = figures[key] ?? []
            let p50 = all.map(\.p50).sorted()[all.count / 2]
            let p99 = all.map(\.p99).sorted()[all.count / 2]
            return Percentiles(p50: p50, p99: p99)
        }
        var rows: [IsolationReport.Row] = []
        for what in ["function", "method", "ping", "create and release"] {
            let isolated = median("process \(what)"), inProcess = median("none \(what)")
            rows.append(.init(
                call: what, isolatedP50: isolated.p50, isolatedP99: isolated.p99, inProcessP50: inProcess.p50,
                inProcessP99: inProcess.p99, p50Ratio: isolated.p50 / inProcess.p50))
        }
        try IsolationReport(rows: rows, iterations: iterations, rounds: rounds, agent: executable).emit(json: json)
    }

    /// p50 and p99 of creating a Counter and releasing it, 50 times in a row.
    static func createLatency(_ connection: Connection) async throws -> Percentiles {
        var samples: [Duration] = []
        for _ in 0..<50 {
            let start = ContinuousClock.now
            let counter = try await connection.create(Counter.self, .init(start: 0))
            try await connection.release(counter)
            samples.append(ContinuousClock.now - start)
        }
        return Percentiles(samples)
    }

    /// p50 and p99 of sequential calls of the quick start Counter's `increment(by: 0)`.
    static func methodLatency(_ connection: Connection, _ counter: Counter, iterations: Int, warmup: Int) async throws -> Percentiles {
        for _ in 0..<warmup { _ = try await counter.increment(by: 0) }
        var samples: [Duration] = []
        samples.reserveCapacity(iterations)
        for _ in 0..<iterations {
            let start = ContinuousClock.now
            _ = try await counter.increment(by: 0)
            samples.append(ContinuousClock.now - start)
        }
        return Percentiles(samples)
    }
}

struct IsolationReport: BenchReport {
    struct Row: Encodable {
        var call: String
        var isolatedP50: Double
        var isolatedP99: Double
        var inProcessP50: Double
        var inProcessP99: Double
        var p50Ratio: Double
    }

    var rows: [Row]
    var iterations: Int
    var rounds: Int
    var agent: String

    func printTable() {
        print("yonder-bench isolation — \(agent), median of \(rounds) rounds of \(iterations) calls")
        print("call                worker process p50 / p99    in the agent p50 / p99     p50 ratio")
        for row in rows {
            let name = row.call.padding(toLength: 20, withPad: " ", startingAt: 0)
            let isolated = String(format: "%7.1f µs / %7.1f µs", row.isolatedP50, row.isolatedP99)
            let inProcess = String(format: "%7.1f µs / %7.1f µs", row.inProcessP50, row.inProcessP99)
            print("\(name)\(isolated)    \(inProcess)    \(String(format: "%.2fx", row.p50Ratio))")
        }
    }
}
