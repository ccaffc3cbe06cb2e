import Foundation
import Testing
import TestSupport
import Yonder
import YonderAWS
import YonderCluster
import YonderLocalServers

#if canImport(Glibc)
import Glibc
#endif

/// `provider: aws` from `up` to a call to `down`, against `moto_server`. The emulator's
/// instances have no machines behind them, so the nodes are reached the way a user reaches
/// instances in a private subnet: `ssh_proxy_command` through a jump host, here the test's
/// sshd, which leads to this machine's Docker.
@Suite(.serialized, .enabled(if: ClusterTestEnvironment.shouldRun))
struct AWSClusterTests {
    let home: URL
    init() throws {
        home = try TestYonderHome.make()
    }

    /// A spec whose nodes are reached through the test's sshd as a jump host.
    static func spec(_ name: String, server: SSHServerFixture, nodes: Int = 2, image: String = ClusterTestEnvironment.image) -> ClusterSpec {
        var spec = ClusterSpec(
            name: name, provider: .aws, image: image, numNodes: nodes,
            resources: .init(cpus: 2, memoryGB: 4, useSpot: true), agent: ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"])
        spec.ami = "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
        spec.sshUser = server.user
        spec.identityFile = server.clientKey
        spec.sshProxyCommand = server.jumpCommand(to: "127.0.0.1:\(server.port)")
        return spec
    }

    @Test func aFailedUpRemovesWhatItMadeInAWSAndNothingItFound() async throws {
        guard let moto = try MotoServer.start() else { return }
        defer { moto.stop() }
        let server = try SSHServerFixture()
        let environment = ProcessInfo.processInfo.environment.merging(moto.environment) { $1 }.merging(["HOME": home.path]) { $1 }
        let ec2 = EC2(endpoint: moto.endpoint, region: "us-east-1", credentials: AWSCredentials(accessKeyID: "testing", secretAccessKey: "testing"))
        let provisioner = AWSProvisioner(ec2: ec2)

        // A fresh cluster whose image cannot be pulled: what up made in AWS goes again.
        let fresh = "aws\(UInt16.random(in: 0...UInt16.max))"
        await #expect(throws: (any Error).self) {
            _ = try await Cluster.up(Self.spec(fresh, server: server, nodes: 1, image: "yonder/does-not-exist:1"), environment: environment)
        }
        #expect(try await provisioner.leftovers(cluster: fresh).isEmpty)

        // A cluster already in AWS (made earlier, its state file lost): a failed up leaves it.
        let existing = "aws\(UInt16.random(in: 0...UInt16.max))"
        var plan = AWSProvisioner.Plan(
            cluster: existing, nodes: 1, imageId: "ami-0ed094fb1304fd857", instanceType: "t3.medium",
            publicKey: try String(contentsOfFile: server.clientKey + ".pub", encoding: .utf8), creator: "tests")
        plan.spot = true
        let earlier = try await provisioner.up(plan)
        await #expect(throws: (any Error).self) {
            _ = try await Cluster.up(Self.spec(existing, server: server, nodes: 1, image: "yonder/does-not-exist:1"), environment: environment)
        }
        let left = try await provisioner.leftovers(cluster: existing)
        #expect(left.count == 3)  // its instance, group and key pair
        #expect(left.contains { $0.contains(earlier.nodes[0].instance.instanceId) })
        #expect(try await provisioner.down(cluster: existing).isEmpty)
    }

    @Test func upToACallToDownLeavesNothingInAWSOrDocker() async throws {
        guard let moto = try MotoServer.start() else { return }
        defer { moto.stop() }
        let server = try SSHServerFixture()
        // The AWS settings a user would export, pointing at the emulator; restored after.
        let saved = moto.environment.keys.map { ($0, ProcessInfo.processInfo.environment[$0]) }
        for (key, value) in moto.environment { setenv(key, value, 1) }
        let savedHome = ProcessInfo.processInfo.environment["HOME"]
        setenv("HOME", home.path, 1)
        defer {
            for (key, value) in saved {
                if let value { setenv(key, value, 1) } else { unsetenv(key) }
            }
            if let savedHome { setenv("HOME", savedHome, 1) }
        }

        let name = "aws\(UInt16.random(in: 0...UInt16.max))"
        // Two spot nodes for 2 vCPUs and 4 GiB, the AMI through an SSM parameter as AWS
        // publishes them (the emulator has Amazon Linux's, whose root device is /dev/xvda).
        var spec = Self.spec(name, server: server)
        spec.resources.diskSizeGB = 50
        spec.sshCIDR = "198.51.100.0/24"

        let steps = Locked<[String]>([])
        let cluster = try await Cluster.up(spec) { event in steps.withLock { $0.append(event.detail) } }
        #expect(try await cluster.connection().ping() < .seconds(1))
        #expect(try await cluster.connection(node: 1).ping() < .seconds(1))
        // The catalog's cheapest type for 2 vCPUs and 4 GiB, shown with its price.
        #expect(steps.withLock { $0 }.contains { $0.contains("t3.medium") && $0.contains("$0.042/h") })

        let ec2 = EC2(endpoint: moto.endpoint, region: "us-east-1", credentials: AWSCredentials(accessKeyID: "testing", secretAccessKey: "testing"))
        let instances = try await ec2.instances(tagged: ["yonder-cluster": name], states: ["running"])
        #expect(instances.count == 2)
        #expect(Set(instances.map(\.instanceId)) == Set(cluster.state.nodes.compactMap(\.instanceID)))
        #expect(instances.allSatisfy { $0.instanceType == "t3.medium" && $0.instanceLifecycle == "spot" })
        #expect(instances.allSatisfy { $0.imageId == "ami-0ed094fb1304fd857" })
        #expect(steps.withLock { $0 }.contains { $0.contains("AMI ami-0ed094fb1304fd857, from the SSM parameter") })
        #expect(try await ec2.securityGroups(tagged: ["yonder-cluster": name]).first?.ipPermissions?.items.first?.ipRanges?.items.map(\.cidrIp) == ["198.51.100.0/24"])
        await cluster.close()
        let report = try await Cluster.report(name)
        #expect(report.nodes.count == 2 && report.nodes.allSatisfy { $0.problem == nil })
        #expect(report.nodes.allSatisfy { $0.instance?.contains("(t3.medium, spot, running)") == true })

        // up again finds everything by tag and makes nothing.
        let again = try await Cluster.up(spec)
        #expect(Set(again.state.nodes.compactMap(\.instanceID)) == Set(cluster.state.nodes.compactMap(\.instanceID)))
        try await again.down()

        let provisioner = AWSProvisioner(ec2: ec2)
        #expect(try await provisioner.leftovers(cluster: name).isEmpty)
        let left = try ChildProcess.run("/usr/bin/env", ["docker", "ps", "-a", "--filter", "label=yonder.cluster=\(name)", "--format", "{{.Names}}"])
        #expect(left.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
    }

    @Test func aStoppedInstanceComesBackWithUpAndOneTerminatedByHandStillGoesWithDown() async throws {
        guard let moto = try MotoServer.start() else { return }
        defer { moto.stop() }
        let server = try SSHServerFixture()
        let saved = moto.environment.keys.map { ($0, ProcessInfo.processInfo.environment[$0]) }
        for (key, value) in moto.environment { setenv(key, value, 1) }
        defer {
            for (key, value) in saved {
                if let value { setenv(key, value, 1) } else { unsetenv(key) }
            }
        }
        let name = "aws\(UInt16.random(in: 0...UInt16.max))"
        let cluster = try await Cluster.up(Self.spec(name, server: server), environment: ProcessInfo.processInfo.environment.merging(["HOME": home.path]) { $1 })
        await cluster.close()
        defer { _ = try? ChildProcess.run("/usr/bin/env", ["docker", "rm", "-f", "yonder-\(name)-0", "yonder-\(name)-1"]) }
        let ec2 = EC2(endpoint: moto.endpoint, region: "us-east-1", credentials: AWSCredentials(accessKeyID: "testing", secretAccessKey: "testing"))
        // Stopped (as autostop on AWS leaves it: the container stopped, then the machine):
        // status says so, and `up` starts the instance and the container again.
        let stopped = try #require(cluster.state.nodes[1].instanceID)
        _ = try ChildProcess.run("/usr/bin/env", ["docker", "stop", "yonder-\(name)-1"])
        _ = try await ec2.client.send("StopInstances", [("InstanceId.1", stopped)])
        let whileStopped = try await Cluster.report(name)
        #expect(whileStopped.nodes[1].problem?.contains("its instance \(stopped) is stopp") == true, "\(String(describing: whileStopped.nodes[1].problem))")
        let steps = Locked<[String]>([])
        let back = try await Cluster.up(Self.spec(name, server: server), environment: ProcessInfo.processInfo.environment.merging(["HOME": home.path]) { $1 }) { event in
            steps.withLock { $0.append(event.detail) }
        }
        #expect(steps.withLock { $0 }.contains { $0.contains("starting stopped instance(s) \(stopped)") })
        #expect(try await back.connection(node: 1).ping() < .seconds(1))
        #expect(back.state.nodes.map(\.instanceID) == cluster.state.nodes.map(\.instanceID))
        await back.close()

        let gone = try #require(cluster.state.nodes[0].instanceID)
        try await ec2.terminate([gone])

        // status says so without trying the dead machine's sshd.
        let report = try await Cluster.report(name)
        #expect(report.nodes[0].problem?.contains("its instance \(gone) is") == true, "\(String(describing: report.nodes[0].problem))")
        #expect(report.nodes[1].problem == nil)

        // down: node 1's container is removed over SSH, node 0's went with its instance (here,
        // where the "instance" is this machine, it is still in Docker: the test removes it).
        steps.withLock { $0 = [] }
        try await Cluster.down(name) { event in steps.withLock { $0.append(event.detail) } }
        #expect(steps.withLock { $0 }.contains { $0.contains("instance \(gone) is") && $0.contains("nothing to remove over SSH") })
        #expect(try await AWSProvisioner(ec2: ec2).leftovers(cluster: name).isEmpty)
        let left = try ChildProcess.run("/usr/bin/env", ["docker", "ps", "-a", "--filter", "label=yonder.cluster=\(name)", "--format", "{{.Names}}"])
        #expect(left.trimmingCharacters(in: .whitespacesAndNewlines) == "yonder-\(name)-0")
        #expect(throws: (any Error).self) { try ClusterState.load(name) }
    }

    @Test func anAMIThatCannotBeFoundStopsUpBeforeAnythingIsMade() async throws {
        guard let moto = try MotoServer.start() else { return }
        defer { moto.stop() }
        let name = "aws\(UInt16.random(in: 0...UInt16.max))"
        var spec = ClusterSpec(name: name, provider: .aws, image: ClusterTestEnvironment.image, agent: ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"])
        let server = try SSHServerFixture()
        spec.identityFile = server.clientKey
        let environment = ProcessInfo.processInfo.environment.merging(moto.environment) { $1 }
        // No ami: Canonical's public Ubuntu parameter, which the emulator does not have.
        let missing = await #expect(throws: ClusterError.self) { _ = try await Cluster.up(spec, environment: environment) }
        #expect(missing?.message.contains("/aws/service/canonical/ubuntu") == true, "\(String(describing: missing))")
        #expect(missing?.message.contains("ParameterNotFound") == true)
        spec.ami = "ami-00000000000000000"
        let unknown = await #expect(throws: ClusterError.self) { _ = try await Cluster.up(spec, environment: environment) }
        #expect(unknown?.message.contains("does not exist in this region") == true)
        let ec2 = EC2(endpoint: moto.endpoint, region: "us-east-1", credentials: AWSCredentials(accessKeyID: "testing", secretAccessKey: "testing"))
        #expect(try await AWSProvisioner(ec2: ec2).leftovers(cluster: name).isEmpty)
    }
}
