// The quick start: typed remote functions and a stateful remote object.
//
// This version runs the agent as a local process and talks to it over loopback TCP, the same
// protocol that travels through the SSH tunnel to an agent inside a container.
import Foundation
import QuickStartShared
import Yonder

let agent = try LocalAgent.start(
    executable: LocalAgent.besideThisProgram("quickstart-agent"), arguments: ["--build", "quickstart"],
    standardError: FileHandle(forWritingAtPath: "/dev/null"))
defer { agent.stop() }
print("agent started, pid \(agent.pid), port \(agent.port)")

let connection = try await agent.connect()
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
let second = try await agent.connect()
let again = try await second.lookup(Counter.self, named: "c1")
print("looked up c1 from a second connection: increment(by: 1) = \(try await again.increment(by: 1))")

let result = try await connection.exec(["uname", "-sr"]).collect()
print("uname -sr in the agent: \(String(decoding: result.standardOutput, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) (\(result.status))")

await second.close()
await connection.close()
print("done")
