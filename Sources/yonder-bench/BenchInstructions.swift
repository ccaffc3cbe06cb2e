import ArgumentParser
import Foundation
import Yonder
import YonderLocalServers

/// Sequential no-op calls to a local agent and nothing else: the workload that
/// `scripts/callgrind.sh` runs under valgrind twice, with two counts, to get the instructions
/// one call costs on each side (the difference of the totals over the difference of counts;
/// start-up and shutdown cancel out). Instruction counts are repeatable on a noisy machine,
/// where timings are not.
struct Instructions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instructions",
        abstract: "Make COUNT sequential no-op calls to a local agent, for counting instructions under callgrind.")

    @Option(help: "Calls to make.")
    var count = 1000

    @Option(help: "What to call: ping (the built-in no-op, answered on the agent's event loop) or echo (16 bytes through `yonder.ping` with an argument).")
    var call = "ping"

    @Option(help: "The yonder-agent executable; defaults to the one beside this program.")
    var agent: String?

    func run() async throws {
        let process = try LocalAgent.start(executable: agent ?? LocalAgent.besideThisProgram("yonder-agent"))
        defer { process.stop() }
        var configuration = Connection.Configuration()
        configuration.keepAliveInterval = nil
        let connection = try await process.connect(configuration: configuration)
        let argument: JSONValue = call == "echo" ? .string("0123456789abcdef") : .null
        for _ in 0..<count {
            _ = try await connection.call("yonder.ping", arguments: argument)
        }
        await connection.close()
    }
}
