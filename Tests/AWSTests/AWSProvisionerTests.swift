import Foundation
import Testing
import TestSupport
import YonderAWS

/// A cluster's AWS resources made, found again, and removed, against `moto_server`.
@Suite(.serialized) struct AWSProvisionerTests {
    static func provisioner(_ moto: MotoServer) throws -> AWSProvisioner {
        var provisioner = AWSProvisioner(ec2: try EC2EmulatorTests.ec2(moto))
        provisioner.pollInterval = .milliseconds(100)
        return provisioner
    }

    static func plan(_ cluster: String, nodes: Int, type: String = "g5.xlarge") throws -> AWSProvisioner.Plan {
        var plan = AWSProvisioner.Plan(
            cluster: cluster, nodes: nodes, imageId: "ami-1e749f67", instanceType: type,
            publicKey: try EC2EmulatorTests.publicKey(), creator: "tests")
        plan.spot = true
        plan.rootVolume = ("/dev/sda1", 100)
        plan.sshCIDR = "203.0.113.0/24"
        plan.userData = "#!/bin/sh\nsystemctl start docker\n"
        return plan
    }

    @Test func upMakesAClusterAgainReusesItAndDownLeavesNothing() async throws {
        guard let moto = try MotoServer.start() else { return }
        defer { moto.stop() }
        let provisioner = try Self.provisioner(moto)
        let ec2 = provisioner.ec2
        let plan = try Self.plan("train", nodes: 2)

        let first = try await provisioner.up(plan)
        #expect(first.nodes.map(\.rank) == [0, 1])
        #expect(first.leaked.isEmpty)
        #expect(first.made.count == 4)  // group, key pair, two instances
        for node in first.nodes {
            let instance = node.instance
            #expect(instance.instanceState.name == "running")
            #expect(instance.instanceType == "g5.xlarge" && instance.imageId == "ami-1e749f67" && instance.instanceLifecycle == "spot")
            #expect(instance.tag("yonder-cluster") == "train" && instance.tag("yonder-node") == String(node.rank))
            #expect(instance.tag("yonder-creator") == "tests" && instance.tag("Name") == "yonder-train-\(node.rank)")
            #expect(instance.keyName == "yonder-train")
            #expect(try await ec2.userData(of: instance.instanceId) == plan.userData)
        }
        let group = try #require(try await ec2.securityGroups(tagged: ["yonder-cluster": "train"]).first)
        let rules = group.ipPermissions?.items ?? []
        #expect(rules.count == 1 && rules.first?.fromPort == 22 && rules.first?.toPort == 22)
        #expect(rules.first?.ipRanges?.items.map(\.cidrIp) == ["203.0.113.0/24"])

        // Again: everything is found by tag and reused.
        let second = try await provisioner.up(plan)
        #expect(second.made.isEmpty)
        #expect(second.nodes.map(\.instance.instanceId) == first.nodes.map(\.instance.instanceId))

        // A third instance tagged as node 1 by hand is a leak, named by id; up keeps the
        // older one (EC2's launch times are whole seconds).
        try await Task.sleep(for: .milliseconds(1100))
        var stray = EC2.Launch(imageId: "ami-1e749f67", instanceType: "t3.micro")
        stray.tags = AWSProvisioner.tags(cluster: "train", creator: "someone") + [EC2.Tag(key: "yonder-node", value: "1")]
        let strayInstance = try await ec2.run(stray)
        let third = try await provisioner.up(plan)
        #expect(third.leaked == [strayInstance.instanceId])
        #expect(third.nodes.map(\.instance.instanceId) == first.nodes.map(\.instance.instanceId))
        #expect(third.made.isEmpty)

        let left = try await provisioner.down(cluster: "train")
        #expect(left.isEmpty)
        #expect(try await ec2.instances(tagged: ["yonder-cluster": "train"], states: AWSProvisioner.liveStates).isEmpty)
        #expect(try await ec2.securityGroups(tagged: ["yonder-cluster": "train"]).isEmpty)
        #expect(try await ec2.keyPairs(tagged: ["yonder-cluster": "train"]).isEmpty)
        // A second down finds nothing and says so.
        #expect(try await provisioner.down(cluster: "train").isEmpty)
    }

    @Test func aFailedUpRemovesWhatItMadeAndOnlyThat() async throws {
        guard let moto = try MotoServer.start(settings: ["MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true"]) else { return }
        defer { moto.stop() }
        let provisioner = try Self.provisioner(moto)
        let ec2 = provisioner.ec2

        // A fresh cluster whose instance type AWS refuses: the group and key pair it made go.
        let refused = await #expect(throws: AWSError.self) { try await provisioner.up(try Self.plan("bad", nodes: 2, type: "x9.nonexistent")) }
        #expect(refused?.code == "InvalidInstanceType.NotFound")
        #expect(refused?.message.contains("x9.nonexistent") == true)
        #expect(refused?.message.contains("what this up made was removed") == true)
        #expect(try await provisioner.leftovers(cluster: "bad").isEmpty)

        // A one-node cluster grown to two with a refused type: node 0, made by the first up,
        // stays; nothing else is made.
        let small = try await provisioner.up(try Self.plan("grow", nodes: 1))
        await #expect(throws: AWSError.self) { try await provisioner.up(try Self.plan("grow", nodes: 2, type: "x9.nonexistent")) }
        let live = try await ec2.instances(tagged: ["yonder-cluster": "grow"], states: AWSProvisioner.liveStates)
        #expect(live.map(\.instanceId) == small.nodes.map(\.instance.instanceId))
        #expect(try await provisioner.down(cluster: "grow").isEmpty)
    }
}

/// What AWS refuses that moto never does, through `EC2FaultProxy`: no capacity in a zone or
/// anywhere, and a vCPU quota reached.
@Suite(.serialized) struct AWSCapacityTests {
    /// Runs `body` with a provisioner whose EC2 calls go through an `EC2FaultProxy` with
    /// `rule` to a fresh emulator.
    static func throughProxy(_ rule: String, _ body: (AWSProvisioner) async throws -> Void) async throws {
        guard let moto = try MotoServer.start() else { return }
        defer { moto.stop() }
        let proxy = try EC2FaultProxy(moto, rule: rule)
        defer { proxy.stop() }
        var provisioner = AWSProvisioner(ec2: try AWSConfiguration(environment: proxy.environment, home: "/nonexistent").client("ec2", EC2.init))
        provisioner.pollInterval = .milliseconds(100)
        try await body(provisioner)
    }

    @Test func noCapacityWhereAWSChoseTriesTheOtherZones() async throws {
        try await Self.throughProxy("capacity-only-in:us-east-1c") { provisioner in
            let said = Locked<[String]>([])
            let outcome = try await provisioner.up(try AWSProvisionerTests.plan("cap", nodes: 1)) { line in said.withLock { $0.append(line) } }
            #expect(outcome.nodes.first?.instance.placement?.availabilityZone == "us-east-1c")
            let lines = said.withLock { $0 }
            #expect(lines.contains { $0.contains("no spot g5.xlarge capacity in the zone AWS chose (InsufficientInstanceCapacity); trying us-east-1a") }, "\(lines)")
            #expect(lines.contains { $0.contains("trying us-east-1c") })
            #expect(try await provisioner.down(cluster: "cap").isEmpty)
        }
    }

    @Test func noCapacityAnywhereNamesTheTypeAndZonesAndLeavesNothing() async throws {
        try await Self.throughProxy("capacity-only-in:none") { provisioner in
            let error = await #expect(throws: AWSError.self) { try await provisioner.up(try AWSProvisionerTests.plan("full", nodes: 1)) }
            #expect(error?.code == "InsufficientInstanceCapacity")
            let message = error?.message ?? ""
            #expect(message.contains("no spot g5.xlarge capacity in any zone of the region (tried the zone AWS chose, us-east-1a"), "\(message)")
            #expect(message.contains("or on-demand (use_spot: false)"))
            #expect(message.contains("what this up made was removed"))
            let left = try await provisioner.leftovers(cluster: "full")
            #expect(left.isEmpty)
        }
    }

    @Test func aVCPUQuotaSaysWhichQuotaAndLeavesNothing() async throws {
        try await Self.throughProxy("vcpu-limit") { provisioner in
            var plan = try AWSProvisionerTests.plan("quota", nodes: 1)
            plan.spot = false
            let error = await #expect(throws: AWSError.self) { try await provisioner.up(plan) }
            #expect(error?.code == "VcpuLimitExceeded")
            #expect(error?.message.contains("\"Running On-Demand G and VT instances\" (L-DB2E81BA)") == true, "\(error?.message ?? "")")
            let left = try await provisioner.leftovers(cluster: "quota")
            #expect(left.isEmpty)
        }
        #expect(AWSProvisioner.quotaAdvice(instanceType: "m5.large", spot: true).contains("All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests"))
        #expect(AWSProvisioner.quotaAdvice(instanceType: "p4d.24xlarge", spot: false).contains("Running On-Demand P instances"))
    }

    @Test func aQuotaMetWhileTryingOtherZonesSaysWhichQuotaToo() async throws {
        try await Self.throughProxy("capacity-then-vcpu-limit") { provisioner in
            let error = await #expect(throws: AWSError.self) { try await provisioner.up(try AWSProvisionerTests.plan("zones", nodes: 1)) }
            #expect(error?.code == "VcpuLimitExceeded")
            #expect(error?.message.contains("\"All G and VT Spot Instance Requests\" (L-3819A6DF)") == true, "\(error?.message ?? "")")
            let left = try await provisioner.leftovers(cluster: "zones")
            #expect(left.isEmpty)
        }
    }

    @Test func autostopWithDownMakesAShutdownTerminate() async throws {
        guard let moto = try MotoServer.start() else { return }
        defer { moto.stop() }
        let provisioner = try AWSProvisionerTests.provisioner(moto)
        var plan = try AWSProvisionerTests.plan("stops", nodes: 1)
        plan.shutdownBehavior = "terminate"
        let id = try #require(try await provisioner.up(plan).nodes.first?.instance.instanceId)
        #expect(try await provisioner.ec2.shutdownBehavior(of: id) == "terminate")
        // The spec changed to a plain stop: the reused instance follows.
        plan.shutdownBehavior = "stop"
        _ = try await provisioner.up(plan)
        #expect(try await provisioner.ec2.shutdownBehavior(of: id) == "stop")
        #expect(try await provisioner.down(cluster: "stops").isEmpty)
    }
}
