import Foundation
import Testing
import TestSupport
import YonderCluster

struct ClusterSpecTests {
    @Test func aFullSpecInSkyPilotTerms() throws {
        let spec = try ClusterSpec.parse("""
            name: demo-1
            provider: local
            image_id: docker:registry.example.com:5000/team/app:1.2
            num_nodes: 2
            resources:
              cpus: 4+
              memory: 8
              accelerators: A100:2
              shm_size: 2G
              use_spot: true
            envs:
              MODEL: small
              BATCH: 32
            """)
        #expect(spec.name == "demo-1")
        #expect(spec.provider == .local)
        #expect(spec.image == "registry.example.com:5000/team/app:1.2")
        #expect(spec.numNodes == 2)
        #expect(spec.resources == ClusterSpec.Resources(cpus: 4, memoryGB: 8, accelerators: .init(name: "A100", count: 2), shmSize: "2g", useSpot: true))
        #expect(spec.envs == ["MODEL": "small", "BATCH": "32"])
    }

    @Test(arguments: [
        ("30", 1800, false), ("90s", 90, false), ("30m", 1800, false), ("2h", 7200, false), ("true", 300, false),
        ("{idle_minutes: 10, down: true}", 600, true), ("{idle_minutes: 5s}", 5, false), ("{down: true}", 300, true),
    ])
    func autostopInSkyPilotTerms(_ text: String, _ seconds: Int, _ down: Bool) throws {
        let spec = try ClusterSpec.parse("name: a\nautostop: \(text)\n")
        #expect(spec.autostop == ClusterSpec.Autostop(idleSeconds: seconds, down: down))
    }

    @Test func skyPilotsCloudAndRunhousesInstanceTypeSpelling() throws {
        let spec = try ClusterSpec.parse("name: a\nresources: {cloud: aws, instance_type: \"CPU:4+\", accelerators: A10G:1}\n")
        #expect(spec.provider == .aws)
        #expect(spec.resources.cpus == 4 && spec.resources.instanceType == nil)
        #expect(spec.resources.accelerators == .init(name: "A10G", count: 1))
        let gpu = try ClusterSpec.parse("name: a\nprovider: aws\nresources: {instance_type: \"A10G:2\"}\n")
        #expect(gpu.resources.accelerators == .init(name: "A10G", count: 2) && gpu.resources.instanceType == nil)
        #expect(try ClusterSpec.parse("name: a\nprovider: aws\nresources: {instance_type: g5.xlarge}\n").resources.instanceType == "g5.xlarge")
        for (text, complaint) in [
            ("resources: {cloud: gcp}", "\"gcp\" is not a cloud Yonder runs on"),
            ("provider: local\nresources: {cloud: aws}", "provider: local, but resources.cloud says aws"),
            ("resources: {cpus: 2, instance_type: \"CPU:4\"}", "asks for cpus, which are already given"),
        ] {
            let error = try #require(throws: ClusterError.self) { try ClusterSpec.parse("name: a\n\(text)\n") }
            #expect(error.message.contains(complaint), "\(text): \(error.message)")
        }
    }

    @Test func theExamplesAreValidSpecs() throws {
        let folder = RepositoryPaths.root.appendingPathComponent("Examples")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }
        #expect(files.count >= 2)
        for file in files { _ = try ClusterSpec.load(from: folder.appendingPathComponent(file).path) }
        let train = try ClusterSpec.load(from: folder.appendingPathComponent("train.yaml").path)
        #expect(train.numNodes == 2 && train.setup != nil && train.run?.contains("train.sh") == true)
        #expect(train.workdir == folder.appendingPathComponent("train").path && train.artifacts == ["outputs"])
        #expect(train.imageBuild?.context == folder.appendingPathComponent("train").path)
    }

    @Test func autostopOffOrWrong() throws {
        #expect(try ClusterSpec.parse("name: a\nautostop: false\n").autostop == nil)
        #expect(try ClusterSpec.parse("name: a\n").autostop == nil)
        for (text, complaint) in [("0", "not a positive duration"), ("5x", "not a positive duration"), ("{idle: 5}", "autostop.idle: unknown field"), ("-3m", "not a positive duration")] {
            let error = try #require(throws: ClusterError.self) { try ClusterSpec.parse("name: a\nautostop: \(text)\n") }
            #expect(error.message.contains(complaint), "\(text): \(error.message)")
            #expect(error.message.contains(":2:"), "the line is named: \(error.message)")
        }
        #expect(ClusterSpec.Autostop(idleSeconds: 1800).description == "30m idle, then stop")
        #expect(ClusterSpec.Autostop(idleSeconds: 45, down: true).description == "45s idle, then down")
    }

    @Test func dstackNamesAndDefaults() throws {
        let spec = try ClusterSpec.parse("""
            name: d
            image: docker:ubuntu:22.04
            env: {A: "1"}
            resources: {gpus: H100}
            """)
        #expect(spec.image == "ubuntu:22.04")
        #expect(spec.envs == ["A": "1"])
        #expect(spec.resources.accelerators == .init(name: "H100", count: 1))
        #expect(spec.numNodes == 1)
        #expect(spec.provider == .local)
        let bare = try ClusterSpec.parse("name: bare")
        #expect(bare.image == nil)
        let nested = try ClusterSpec.parse("name: n\nresources:\n  image_id: docker:debian:12\n")
        #expect(nested.image == "debian:12")
    }

    @Test func sshProviderTakesHosts() throws {
        let spec = try ClusterSpec.parse("""
            name: lab
            provider: ssh
            hosts: [ubuntu@10.0.0.5, "root@gpu-1.example.com:2222"]
            identity_file: ~/.ssh/id_ed25519
            accept_new_host_keys: yes
            ssh_proxy_command: ssh -W %h:%p bastion.example.com
            """)
        #expect(spec.sshProxyCommand == "ssh -W %h:%p bastion.example.com")
        let aws = try ClusterSpec.parse("""
            name: train
            provider: aws
            region: eu-west-1
            ami: ami-0123456789abcdef0
            ssh_user: ec2-user
            ssh_cidr: 203.0.113.0/24
            resources: {instance_type: g5.xlarge, use_spot: true, disk_size: 200}
            """)
        #expect(aws.provider == .aws && aws.region == "eu-west-1" && aws.ami == "ami-0123456789abcdef0")
        #expect(aws.sshUser == "ec2-user" && aws.sshCIDR == "203.0.113.0/24")
        #expect(aws.resources.instanceType == "g5.xlarge" && aws.resources.useSpot && aws.resources.diskSizeGB == 200)
        try aws.validate()
        try ClusterSpec(name: "noami", provider: .aws).validate()
        var badAMI = aws
        badAMI.ami = "ubuntu-22.04"
        #expect(throws: ClusterError.self) { try badAMI.validate() }
        var badCIDR = aws
        badCIDR.sshCIDR = "everyone"
        #expect(throws: ClusterError.self) { try badCIDR.validate() }
        #expect(spec.hosts == ["ubuntu@10.0.0.5", "root@gpu-1.example.com:2222"])
        #expect(spec.numNodes == 2)
        #expect(spec.acceptNewHostKeys)
        #expect(spec.identityFile == "~/.ssh/id_ed25519")
    }

    /// Each bad spec, and a part of the message it must produce.
    @Test(arguments: [
        ("name: a\nimage_idd: docker:x", ["spec.yaml:2", "image_idd", "unknown field", "allowed:", "image_id"]),
        ("image_id: docker:x", ["name: missing"]),
        ("name: 'bad name!'", ["spec.yaml:1", "name", "not allowed"]),
        ("name: a\nprovider: gcp", ["provider", "\"gcp\"", "allowed: local, ssh, aws"]),
        ("name: a\nimage_id: ubuntu", ["image_id", "must start with docker:"]),
        ("name: a\nimage_id: docker:x\nimage: docker:y", ["image", "already given by image_id"]),
        ("name: a\nnum_nodes: 0", ["num_nodes", "out of range", "1 to 64"]),
        ("name: a\nnum_nodes: two", ["num_nodes", "not a whole number"]),
        ("name: a\nresources:\n  cpus: lots", ["spec.yaml:3", "resources.cpus", "positive number"]),
        ("name: a\nresources:\n  memory: -1", ["resources.memory", "positive number"]),
        ("name: a\nresources:\n  accelerators: A100:x", ["resources.accelerators", "NAME:COUNT"]),
        ("name: a\nresources:\n  shm_size: huge", ["resources.shm_size", "512m or 2g"]),
        ("name: a\nresources:\n  use_spot: maybe", ["resources.use_spot", "not true or false"]),
        ("name: a\nresources:\n  disk: 100", ["resources.disk", "unknown field"]),
        ("name: a\nresources:\n  gpus: A:1\n  accelerators: B:1", ["given twice"]),
        ("name: a\nenvs:\n  1BAD: x", ["envs.1BAD", "not a valid variable name"]),
        ("name: a\nprovider: ssh", ["hosts", "needs hosts"]),
        ("name: a\nhosts: [u@h]", ["hosts", "only the ssh provider"]),
        ("name: a\nprovider: ssh\nhosts: [nouser]", ["hosts", "\"nouser\"", "user@host"]),
        ("name: a\nprovider: ssh\nhosts: [u@h]\nnum_nodes: 2", ["num_nodes", "2 nodes but 1 hosts"]),
        ("name: a\nname: b", ["not valid YAML", "duplicated", "name"]),
        ("- just\n- a list", ["expected a mapping"]),
        ("name: [unclosed", ["not valid YAML", "line"]),
        ("name: a\nimage_id: {build: ., push: 'reg.example.com/team/app:v1'}", ["image_id.push", "without a tag"]),
        ("name: a\nimage_id: {dockerfile: D}", ["image_id", "give the folder to build from"]),
        ("name: a\nartifacts: [outputs]", ["artifacts", "has no workdir"]),
        ("name: a\nworkdir: .\nartifacts: [/etc]", ["artifacts", "/etc is not a path inside the workdir"]),
        ("name: a\nworkdir: .\nartifacts: outputs", ["artifacts", "expected a list"]),
    ])
    func badSpecsSayWhatIsWrong(yaml: String, expected: [String]) {
        do {
            _ = try ClusterSpec.parse(yaml, file: "spec.yaml")
            Issue.record("accepted: \(yaml)")
        } catch let error as ClusterError {
            #expect(error.code == .invalidSpec)
            for part in expected {
                #expect(error.description.contains(part), "\(error.description) lacks \(part)")
            }
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func anImageToBuildAndPushInAnyOrderOfItsFields() throws {
        let spec = try ClusterSpec.parse("name: a\nimage_id: {dockerfile: docker/Train, push: 'reg.example.com:5000/team/app', build: ctx}\nworkdir: .\nartifacts: [outputs, ./logs/train.log]")
        #expect(spec.imageBuild == ClusterSpec.ImageBuild(context: "ctx", dockerfile: "docker/Train", push: "reg.example.com:5000/team/app"))
        #expect(spec.artifacts == ["outputs", "logs/train.log"])
    }

    @Test func aMissingFileIsNamed() {
        let error = #expect(throws: ClusterError.self) { try ClusterSpec.load(from: "/no/such/spec.yaml") }
        #expect(error?.description.contains("/no/such/spec.yaml does not exist") == true)
    }

    @Test func registryCredentialsFromEitherNaming() throws {
        let ours = try #require(try RegistryCredentials.fromEnvironment([
            "YONDER_DOCKER_USERNAME": "u", "YONDER_DOCKER_PASSWORD": "p4ss", "YONDER_DOCKER_SERVER": "reg:5000",
        ]))
        #expect(ours.username == "u" && ours.password == "p4ss" && ours.server == "reg:5000")
        #expect(!ours.description.contains("p4ss"))
        let sky = try #require(try RegistryCredentials.fromEnvironment(["SKYPILOT_DOCKER_USERNAME": "s", "SKYPILOT_DOCKER_PASSWORD": "q"]))
        #expect(sky.username == "s" && sky.server == nil)
        #expect(try RegistryCredentials.fromEnvironment([:]) == nil)
        let half = #expect(throws: ClusterError.self) { try RegistryCredentials.fromEnvironment(["YONDER_DOCKER_USERNAME": "u"]) }
        #expect(half?.description.contains("YONDER_DOCKER_PASSWORD is not") == true)
        #expect(RegistryCredentials.registry(of: "localhost:5000/app:1") == "localhost:5000")
        #expect(RegistryCredentials.registry(of: "ghcr.io/org/app") == "ghcr.io")
        #expect(RegistryCredentials.registry(of: "library/ubuntu") == nil)
        #expect(RegistryCredentials.registry(of: "ubuntu:22.04") == nil)
    }

    @Test func aSpecBuiltInSwiftIsCheckedBeforeAnythingIsMade() async throws {
        let injection = await #expect(throws: ClusterError.self) { _ = try await Cluster.up(ClusterSpec(name: "x; rm -rf ~")) }
        #expect(injection?.code == .invalidSpec)
        #expect(injection?.message.contains("is not a cluster name") == true)
        let hosts = await #expect(throws: ClusterError.self) {
            _ = try await Cluster.up(ClusterSpec(name: "ok", provider: .ssh, hosts: ["root@host;id"]))
        }
        #expect(hosts?.message.contains("is not user@host") == true)
        let count = await #expect(throws: ClusterError.self) {
            _ = try await Cluster.up(ClusterSpec(name: "ok", provider: .ssh, numNodes: 2, hosts: ["root@a"]))
        }
        #expect(count?.message.contains("one host per node") == true)
        let env = await #expect(throws: ClusterError.self) { _ = try await Cluster.up(ClusterSpec(name: "ok", envs: ["A B": "1"])) }
        #expect(env?.message.contains("not an environment variable name") == true)
        // A name from elsewhere (the CLI, attach, down) never becomes a path outside ~/.yonder.
        #expect(throws: ClusterError.self) { try ClusterState.load("../../etc/passwd") }
        let down = await #expect(throws: ClusterError.self) { _ = try await Cluster.down("../x") }
        #expect(down?.code == .invalidSpec)
    }
}

/// The instance catalog's choice for resources.
@Suite struct InstanceCatalogTests {
    @Test func theCheapestTypeThatHasWhatIsAskedFor() {
        #expect(InstanceType.cheapest(cpus: nil, memoryGB: nil, accelerators: nil)?.name == "t3.medium")
        #expect(InstanceType.cheapest(cpus: 4, memoryGB: 16, accelerators: nil)?.name == "t3.xlarge")
        #expect(InstanceType.cheapest(cpus: 8, memoryGB: 64, accelerators: nil)?.name == "r6i.2xlarge")
        #expect(InstanceType.cheapest(cpus: nil, memoryGB: nil, accelerators: .init(name: "A10G", count: 1))?.name == "g5.xlarge")
        #expect(InstanceType.cheapest(cpus: 16, memoryGB: nil, accelerators: .init(name: "a10g", count: 1))?.name == "g5.4xlarge")
        #expect(InstanceType.cheapest(cpus: nil, memoryGB: nil, accelerators: .init(name: "A100", count: 8))?.name == "p4d.24xlarge")
        #expect(InstanceType.cheapest(cpus: nil, memoryGB: nil, accelerators: .init(name: "TPU", count: 1)) == nil)
        #expect(InstanceType.cheapest(cpus: 1000, memoryGB: nil, accelerators: nil) == nil)
    }
}

/// Registry logins for images in Amazon ECR, from AWS credentials alone, against moto_server.
@Suite struct ECRLoginTests {
    @Test func anECRImageGetsATokenFromAWSCredentialsAndGivenCredentialsWin() async throws {
        guard let moto = try MotoServer.start() else { return }
        defer { moto.stop() }
        let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:latest"
        let login = try #require(try await RegistryCredentials.resolve(image: image, environment: moto.environment))
        // The emulator's token for account 123456789012, decoded from base64 "AWS:…".
        #expect(login.username == "AWS")
        #expect(login.password == "123456789012-auth-token")
        #expect(login.server == "123456789012.dkr.ecr.us-east-1.amazonaws.com")
        #expect(!login.description.contains(login.password))

        var given = moto.environment
        given["YONDER_DOCKER_USERNAME"] = "robot"
        given["YONDER_DOCKER_PASSWORD"] = "given-secret"
        #expect(try await RegistryCredentials.resolve(image: image, environment: given)?.username == "robot")
        #expect(try await RegistryCredentials.resolve(image: "registry.example.com/app:1", environment: moto.environment) == nil)
        #expect(try await RegistryCredentials.resolve(image: "debian:12", environment: moto.environment) == nil)

        // No AWS credentials: the error says what to do.
        let error = await #expect(throws: ClusterError.self) {
            _ = try await RegistryCredentials.resolve(image: image, environment: ["HOME": "/nonexistent"])
        }
        #expect(error?.message.contains("ECR") == true && error?.message.contains("YONDER_DOCKER_USERNAME") == true)
    }
}

