import ArgumentParser
import Foundation
import Yonder
import YonderLocalServers

/// `yonder-bench instructions`: a fixed number of calls and nothing else, the load that
/// `scripts/instructions.sh` counts under callgrind. Two runs with different `--calls` give
/// the instructions of one call (the difference over the extra calls), free of start-up.
struct Instructions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make a fixed number of calls to a local agent and exit (the load of scripts/instructions.sh).",
        discussion: """
            Starts the yonder-agent found beside this executable (or --agent) on a free loopback \
            port and makes --calls calls one after another: the untyped no-op yonder.ping \
            (--kind ping), or a typed call whose argument and result are a small Codable struct \
            (--kind typed). It prints nothing. Run it under callgrind twice with different \
            --calls and divide the difference in instructions by the difference in calls: \
            scripts/instructions.sh does that, for the client and the agent.
            """)

    enum Kind: String, ExpressibleByArgument, CaseIterable {
        case ping, typed
    }

    @Option(help: "Calls to make.")
    var calls = 2_000

    @Option(help: "The call to make: \(Kind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var kind = Kind.ping

    @Option(help: "The yonder-agent executable; defaults to the one beside this program.")
    var agent: String?

    func run() async throws {
        let process = try LocalAgent.start(executable: agent ?? LocalAgent.besideThisProgram("yonder-agent"))
        defer { process.stop() }
        var configuration = Connection.Configuration()
        configuration.keepAliveInterval = nil
        let connection = try await process.connect(configuration: configuration)
        let sample = Sample(name: "sample", values: [1.5, 2.5, 3.5], count: 3)
        for index in 0..<calls {
            switch kind {
            case .ping:
                let value = try await connection.call("yonder.ping", arguments: .integer(Int64(index)))
                guard value == .integer(Int64(index)) else { throw ValidationError("yonder.ping answered \(value) to \(index)") }
            case .typed:
                let echoed = try await connection.run(PingSample.self, sample)
                guard echoed == sample else { throw ValidationError("yonder.ping answered \(echoed)") }
            }
        }
        await connection.close()
        // Not killed: an agent run under callgrind writes its counts as it exits.
        process.terminate()
    }
}

/// A small typed argument and result, as a typical call carries.
struct Sample: Codable, Equatable, Sendable {
    var name: String
    var values: [Double]
    var count: Int
}

/// `yonder.ping` seen as a typed function of a `Sample`: it answers with its argument.
struct PingSample: RemoteFunction {
    static var remoteName: String { "yonder.ping" }
    static func run(_ input: Sample) async throws -> Sample { input }
}
