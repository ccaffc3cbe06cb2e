// The README's Swift snippets, as written there, compiled by the tests so that they cannot go
// stale. Each block sits in a function with the names it assumes (`connection`, `token`)
// as parameters; none of them runs here (the examples and cluster tests run the same calls).
import Distributed
import Testing
import Yonder
import YonderAgent
import YonderCluster
import YonderSSH

// README, the first block.
struct Add: RemoteFunction {                       // a named, typed remote function
    static func run(_ numbers: [Int]) async throws -> Int { numbers.reduce(0, +) }
}

distributed actor Counter: RemoteObject {          // a stateful remote object
    typealias ActorSystem = YonderActorSystem
    struct Arguments: Codable, Sendable { var start: Int }
    private var value: Int
    init(_ arguments: Arguments, actorSystem: ActorSystem) { value = arguments.start; self.actorSystem = actorSystem }
    distributed func increment(by n: Int) -> Int { value += n; return value }
}

func firstBlock(connection: Connection) async throws {
    let sum = try await connection.run(Add.self, [1, 2, 3])               // 6, computed by the agent
    let counter = try await connection.create(Counter.self, .init(start: 10), name: "c1")
    _ = try await counter.increment(by: 5)                                 // 15, state kept remotely
    let again = try await connection.lookup(Counter.self, named: "c1")    // re-attach, from any process
    _ = (sum, again)
}

// "Use it in your package": Sources/MyAgent/main.swift.
func agentBlock() async throws {
    await Agent.serve(functions: [Add.self], objects: [Counter.self])
}

// "Use it in your package": Sources/MyApp/main.swift.
func appBlock() async throws {
    let spec = ClusterSpec(name: "demo", image: "yonder/debian:bookworm", agentProduct: AgentProduct(product: "MyAgent"))
    let cluster = try await Cluster.up(spec) { print($0) }
    print(try await cluster.connection().run(Add.self, [1, 2, 3]))
}

// "Clusters".
func clusterBlock() async throws {
    let cluster = try await Cluster.up(try ClusterSpec.load(from: "cluster.yaml")) { print($0) }
    let sum = try await cluster.connection().run(Add.self, [1, 2, 3])
    // in another process:
    let counter = try await Cluster.attach("quickstart").connection().lookup(Counter.self, named: "c1")
    try await Cluster.down("quickstart")
    _ = (sum, counter)
}

// "Tasks: setup and run", spreading work over the nodes.
func mapBlock(cluster: Cluster) async throws {
    let inputs = (0..<1000).map { [$0, 1] }
    let sums = try await cluster.map(Add.self, inputs)          // in input order; the nodes share the work
    let outcomes = await cluster.mapResults(Add.self, inputs)   // every outcome, failures included
    for try await (index, sum) in cluster.mapAsCompleted(Add.self, inputs) { print(index, sum) }
    let perNode = try await cluster.broadcast(Add.self, [1, 2]) // once on each node
    _ = (sums, outcomes, perNode)
}

// "The SSH layer".
func sshBlock(token: String) async throws {
    let session = try await SSHSession.connect(SSHConfiguration(
        host: "node-1", user: "ubuntu",
        authentication: [.privateKey(path: "~/.ssh/id_ed25519"), .agent],
        hostKeys: .knownHosts()))                        // or .knownHosts(acceptNew: true), .pinned([...])

    let result = try await session.run("docker info --format '{{.ServerVersion}}'")
    print(result.status, result.stdoutText)              // exit status 0, 28.2.2

    let tunnel = try await session.openTunnel(host: "127.0.0.1", port: 40123)   // like ssh -L, no local port
    let connection = try await Connection.open(over: tunnel, token: token)

    let sftp = try await session.sftp()
    try await sftp.upload(from: "yonder-agent", to: "/tmp/yonder/agent", mode: 0o755)

    let status = try await session.interactiveShell()   // ssh HOST: PTY, raw mode, resizes
    _ = (connection, status)
}

// README, section "Speed".
func executorBlock(cluster: Cluster, batches: [[Int]]) async throws {
    let connection = try await cluster.connection()
    if let executor = connection.executor {
        try await withTaskExecutorPreference(executor) {
            for numbers in batches { _ = try await connection.run(Add.self, numbers) }
        }
    }
}

@Suite struct ReadmeSnippetTests {
    /// The snippets' types are what the README says they are: remote names as shown by
    /// `yonder call` and `yonder objects`.
    @Test func theSnippetsTypesHaveTheirRemoteNames() {
        #expect(Add.remoteName == "Add")
        #expect(Counter.remoteName == "Counter")
    }
}
