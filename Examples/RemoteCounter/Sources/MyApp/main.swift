import Foundation
import Shared
import Yonder
import YonderCluster

// The agent is this package's MyAgent product: `up` builds it static and installs it.
let spec = ClusterSpec(name: "remote-counter", image: "yonder/debian:bookworm", agentProduct: AgentProduct(product: "MyAgent"))
let cluster = try await Cluster.up(spec) { print($0) }
let sum = try await cluster.connection().run(Add.self, [1, 2, 3])
let counter = try await cluster.connection().create(Counter.self, .init(start: 10), name: "c1")
let value = try await counter.increment(by: 5)
// A second process would do the same: attach to the running cluster, look the object up.
let attached = try await Cluster.attach("remote-counter")
let again = try await attached.connection().lookup(Counter.self, named: "c1")
let after = try await again.increment(by: 1)
await attached.close()
print("sum \(sum) counter \(value) then \(after)")
await cluster.close()
_ = try await Cluster.down("remote-counter")
