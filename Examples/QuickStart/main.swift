// The quick start: typed remote functions and a stateful remote object.
//
// This version runs the agent as a local process and talks to it over loopback TCP, the same
// protocol that travels through the SSH tunnel to an agent inside a container.
import Foundation
import QuickStartShared
import Yonder

/// Starts the quick start's agent beside this executable and returns its port.
func startAgent(token: String) throws -> (Process, Int) {
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    let process = Process()
    process.executableURL = here.appendingPathComponent("quickstart-agent")
    process.arguments = ["serve", "--port", "0", "--token-env", "QUICKSTART_TOKEN", "--build", "quickstart"]
    process.environment = ProcessInfo.processInfo.environment.merging(["QUICKSTART_TOKEN": token]) { $1 }
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    var buffer = Data()
    while !buffer.contains(UInt8(ascii: "\n")) {
        let chunk = output.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        buffer.append(chunk)
    }
    struct Listening: Decodable { var event: String; var port: Int }
    guard let line = buffer.split(separator: UInt8(ascii: "\n")).first,
        let listening = try? JSONDecoder().decode(Listening.self, from: Data(line)), listening.event == "listening"
    else {
        process.terminate()
        throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "quickstart-agent did not start"])
    }
    return (process, listening.port)
}

let token = (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 16) }.joined()
let (agentProcess, port) = try startAgent(token: token)
defer { agentProcess.terminate(); agentProcess.waitUntilExit() }
print("agent started, pid \(agentProcess.processIdentifier), port \(port)")

let connection = try await Connection.connect(port: port, token: token)
print("connected to \(connection.agent.name) \(connection.agent.version)")

let sum = try await connection.run(Add.self, [1, 2, 3])
print("Add([1, 2, 3]) = \(sum)")

let greeting = try await connection.run(Greet.self, "Swift") { record in
    print("  remote log: \(record.message)")
}
print(greeting)

let counter = try await connection.create(Counter.self, .init(start: 10), name: "c1")
print("counter.increment(by: 5) = \(try await counter.increment(by: 5))")

// A second connection (it could be another process) re-attaches to the named object.
let second = try await Connection.connect(port: port, token: token)
let again = try await second.lookup(Counter.self, named: "c1")
print("looked up c1 from a second connection: increment(by: 1) = \(try await again.increment(by: 1))")

let result = try await connection.exec(["uname", "-sr"]).collect()
print("uname -sr in the agent: \(String(decoding: result.standardOutput, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) (\(result.status))")

await second.close()
await connection.close()
print("done")
