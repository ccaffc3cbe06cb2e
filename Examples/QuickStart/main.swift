// The quick start: typed remote functions and a stateful remote object, in a Docker container
// on a `local` cluster (this machine: a private sshd on 127.0.0.1 and the local Docker engine).
//
//   yonder-quickstart up [SPEC]   bring the cluster up, call functions, create the named counter
//   yonder-quickstart attach      another process: find the cluster and the counter by name
//   yonder-quickstart down        remove the container, the sshd and the state
//
// The agent put in the container is the custom `quickstart-agent` (it knows Add, Greet and
// Counter), built statically; YONDER_AGENT names it (scripts/demo.sh builds and sets it).
import Foundation
import QuickStartShared
import Yonder
import YonderCluster

let arguments = CommandLine.arguments.dropFirst()
let command = arguments.first ?? "up"
let specPath = arguments.dropFirst().first ?? "Examples/quickstart.yaml"

func now() -> ContinuousClock.Instant { ContinuousClock.now }
func since(_ start: ContinuousClock.Instant) -> String {
    let elapsed = ContinuousClock.now - start
    return String(format: "%.1f ms", Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1e3)
}

do {
    switch command {
    case "up":
        let spec = try ClusterSpec.load(from: specPath)
        print("bringing up cluster \(spec.name) (\(spec.image ?? "no image"))")
        let cluster = try await Cluster.up(spec) { print("  \($0)") }
        let connection = try await cluster.connection()
        print("connected to \(connection.agent.name) \(connection.agent.version) in container \(cluster.state.nodes[0].container)")

        var start = now()
        let sum = try await connection.run(Add.self, [1, 2, 3])
        print("Add([1, 2, 3]) = \(sum)   (\(since(start)))")

        let greeting = try await connection.run(Greet.self, "Swift") { record in print("  remote log: \(record.message)") }
        print(greeting)

        start = now()
        let counter = try await connection.create(Counter.self, .init(start: 10), name: "c1", reuse: true)
        print("counter c1 created   (\(since(start)))")
        print("counter.increment(by: 5) = \(try await counter.increment(by: 5))")

        let result = try await connection.exec(["sh", "-c", "echo \"$GREETING from $(cat /etc/os-release | grep PRETTY_NAME | cut -d= -f2)\""]).collect()
        print("inside the container: \(result.outputText.trimmingCharacters(in: .whitespacesAndNewlines))")
        await cluster.close()
        print("cluster \(spec.name) keeps running; try: yonder-quickstart attach, then yonder-quickstart down")

    case "attach":
        let name = arguments.dropFirst().first ?? "quickstart"
        let start = now()
        let cluster = try await Cluster.attach(name)
        print("attached to cluster \(name) in \(since(start))")
        let counter = try await cluster.connection().lookup(Counter.self, named: "c1")
        print("found counter c1 from a second process: increment(by: 1) = \(try await counter.increment(by: 1))")
        await cluster.close()

    case "down":
        let name = arguments.dropFirst().first ?? "quickstart"
        try await Cluster.down(name) { print("  \($0)") }
        print("cluster \(name) is down")

    default:
        print("usage: yonder-quickstart up [SPEC.yaml] | attach [NAME] | down [NAME]")
        exit(2)
    }
} catch {
    FileHandle.standardError.write(Data("yonder-quickstart: \(error)\n".utf8))
    exit(1)
}
