import Foundation
import Testing
import TestSupport
import YonderAWS

/// The EC2 calls against `moto_server`, a real HTTP server that keeps what it is told.
@Suite(.serialized) struct EC2EmulatorTests {
    static func ec2(_ moto: MotoServer) throws -> EC2 {
        try AWSConfiguration(environment: moto.environment, home: "/nonexistent").client("ec2", EC2.init)
    }

    static func publicKey() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-key-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let key = folder.appendingPathComponent("id").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/ssh-keygen")
        process.arguments = ["-q", "-t", "ed25519", "-N", "", "-C", "yonder-test", "-f", key]
        try process.run()
        process.waitUntilExit()
        return try String(contentsOfFile: key + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func groupsKeysAndInstancesAreMadeFoundByTagAndRemoved() async throws {
        guard let moto = try MotoServer.start() else { return }
        defer { moto.stop() }
        let ec2 = try Self.ec2(moto)
        let tags = [EC2.Tag(key: "yonder-cluster", value: "train"), EC2.Tag(key: "yonder-creator", value: "tests")]

        let group = try await ec2.createSecurityGroup(name: "yonder-train", description: "Yonder cluster train", tags: tags)
        try await ec2.allowIngress(group: group, port: 22, cidr: "0.0.0.0/0")
        let groups = try await ec2.securityGroups(tagged: ["yonder-cluster": "train"])
        #expect(groups.map(\.groupId) == [group])
        let rules = groups.first?.ipPermissions?.items ?? []
        #expect(rules.count == 1)
        #expect(rules.first?.ipProtocol == "tcp" && rules.first?.fromPort == 22 && rules.first?.toPort == 22)
        #expect(rules.first?.ipRanges?.items.map(\.cidrIp) == ["0.0.0.0/0"])

        try await ec2.importKeyPair(name: "yonder-train", publicKey: try Self.publicKey(), tags: tags)
        #expect(try await ec2.keyPairs(tagged: ["yonder-cluster": "train"]).map(\.keyName) == ["yonder-train"])

        var launch = EC2.Launch(imageId: "ami-1e749f67", instanceType: "g5.xlarge")
        launch.keyName = "yonder-train"
        launch.securityGroupIds = [group]
        launch.userData = "#!/bin/sh\necho 'hello from user-data' > /tmp/yonder\n"
        launch.spot = true
        launch.rootVolume = ("/dev/sda1", 100)
        for rank in 0..<2 {
            launch.tags = tags + [EC2.Tag(key: "yonder-node", value: String(rank))]
            let started = try await ec2.run(launch)
            #expect(started.instanceId.hasPrefix("i-"))
        }
        // Another cluster's instance is not found by this one's tags.
        var other = EC2.Launch(imageId: "ami-1e749f67", instanceType: "t3.micro")
        other.tags = [EC2.Tag(key: "yonder-cluster", value: "other")]
        _ = try await ec2.run(other)

        let found = try await ec2.instances(tagged: ["yonder-cluster": "train"]).sorted { ($0.tag("yonder-node") ?? "") < ($1.tag("yonder-node") ?? "") }
        #expect(found.map { $0.tag("yonder-node") } == ["0", "1"])
        for instance in found {
            #expect(instance.instanceType == "g5.xlarge")
            #expect(instance.imageId == "ami-1e749f67")
            #expect(instance.instanceLifecycle == "spot")
            #expect(instance.keyName == "yonder-train")
            #expect(instance.groupSet?.items.map(\.groupId) == [group])
            #expect(instance.tag("yonder-creator") == "tests")
            #expect(["pending", "running"].contains(instance.instanceState.name))
            #expect(try await ec2.userData(of: instance.instanceId) == launch.userData)
        }

        try await ec2.terminate(found.map(\.instanceId))
        let live = try await ec2.instances(tagged: ["yonder-cluster": "train"], states: ["pending", "running", "stopping", "stopped"])
        #expect(live.isEmpty)
        try await ec2.deleteSecurityGroup(group)
        try await ec2.deleteKeyPair("yonder-train")
        #expect(try await ec2.securityGroups(tagged: ["yonder-cluster": "train"]).isEmpty)
        #expect(try await ec2.keyPairs(tagged: ["yonder-cluster": "train"]).isEmpty)
        #expect(try await ec2.instances(tagged: ["yonder-cluster": "other"]).count == 1)
    }

    @Test func awsErrorsKeepTheirCodeAndMessage() async throws {
        guard let moto = try MotoServer.start() else { return }
        defer { moto.stop() }
        let ec2 = try Self.ec2(moto)
        let error = await #expect(throws: AWSError.self) { try await ec2.deleteSecurityGroup("sg-00000000000000000") }
        #expect(error?.code == "InvalidGroup.NotFound")
        #expect(error?.message.contains("sg-00000000000000000") == true)
        // Nothing listens: a connection failure, after the retries.
        var client = AWSQueryClient(
            service: "ec2", version: "2016-11-15", endpoint: URL(string: "http://127.0.0.1:9")!, region: "us-east-1",
            credentials: AWSCredentials(accessKeyID: "x", secretAccessKey: "y"))
        client.attempts = 2
        client.timeout = .seconds(2)
        let closed = client
        let refused = await #expect(throws: AWSError.self) { try await closed.send("DescribeRegions") }
        #expect(refused?.code == "ConnectionFailed")
    }
}
