import Foundation
import Synchronization
import YonderAWS
import YonderLocalServers
import YonderSSH

/// EC2 instances made for the cluster (YonderAWS's `AWSProvisioner`: a security group that
/// admits SSH only, an imported key pair, one tagged instance per node), reached over SSH
/// with the cluster's key as the `ssh` provider reaches its hosts, directly or through
/// `ssh_proxy_command`. Everything is found again by tag, and `down` deletes it all.
struct AWSProvider: Provider {
    let spec: ClusterSpec
    let environment: [String: String]
    /// What the last `provision` made, for `undoProvision`.
    private let made = Made()

    private final class Made: Sendable {
        let outcome = Mutex<AWSProvisioner.Outcome?>(nil)
        func withLock<R>(_ body: (inout AWSProvisioner.Outcome?) -> R) -> R { outcome.withLock { body(&$0) } }
    }

    init(spec: ClusterSpec, environment: [String: String]) {
        self.spec = spec
        self.environment = environment
    }

    /// How long a new instance may take to let the cluster's key in.
    static let sshTimeout: Duration = .seconds(600)

    func provisioner(_ spec: ClusterSpec) throws -> AWSProvisioner {
        do {
            return AWSProvisioner(ec2: try AWSConfiguration(environment: environment).client("ec2", region: spec.region, EC2.init))
        } catch {
            throw ClusterError(.providerFailed, "cluster \(spec.name): \(error.message)")
        }
    }

    /// The AMI to boot and its root device: the spec's id, or the one an SSM parameter holds
    /// (the spec's `ssm:NAME`, else AWS's public Ubuntu or Deep Learning AMI parameter).
    func image(_ spec: ClusterSpec, ec2: EC2, say: @Sendable (String) -> Void) async throws -> EC2.Image {
        var id = spec.ami ?? ""
        if !id.hasPrefix("ami-") {
            let parameter = id.hasPrefix("ssm:") ? String(id.dropFirst(4)) : (spec.resources.accelerators == nil ? SSM.ubuntuAMI : SSM.deepLearningAMI)
            do {
                let ssm = try AWSConfiguration(environment: environment).client("ssm", region: spec.region, SSM.init)
                id = try await ssm.parameter(parameter)
            } catch {
                throw ClusterError(.providerFailed, "cluster \(spec.name): cannot find the AMI through the SSM parameter \(parameter): \(error.code): \(error.message); give ami: ami-… of the region")
            }
            say("AMI \(id), from the SSM parameter \(parameter)")
        }
        let image: EC2.Image?
        do {
            image = try await ec2.image(id)
        } catch {
            throw ClusterError(.providerFailed, "cluster \(spec.name): cannot look up the AMI \(id): \(error.code): \(error.message)")
        }
        guard let image else {
            throw ClusterError(.providerFailed, "cluster \(spec.name): the AMI \(id) does not exist in this region (AMIs are per region); give an AMI id of the region, or leave ami out for Ubuntu 22.04")
        }
        return image
    }

    func provision(_ spec: ClusterSpec, previous: ClusterState?, progress: @escaping @Sendable (ClusterProgress) -> Void) async throws -> [NodeEndpoint] {
        let say: @Sendable (String) -> Void = { text in progress(ClusterProgress(node: nil, step: "aws", detail: text, elapsed: .zero)) }
        let provisioner = try provisioner(spec)
        let identity = try Self.identity(spec)
        let publicKey = try String(contentsOfFile: identity + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let type: String
        if let given = spec.resources.instanceType {
            type = given
            say("instance type \(given)" + (InstanceType.named(given).map { String(format: " ($%.3f/h on demand in us-east-1)", $0.hourlyPrice) } ?? ""))
        } else {
            guard let chosen = InstanceType.cheapest(cpus: spec.resources.cpus, memoryGB: spec.resources.memoryGB, accelerators: spec.resources.accelerators) else {
                throw ClusterError(.invalidSpec, "cluster \(spec.name): no instance type of Yonder's catalog has \(Self.describe(spec.resources)); give resources.instance_type")
            }
            type = chosen.name
            say(String(format: "instance type %@ (%d vCPUs, %.0f GiB%@), the cheapest with %@: $%.3f/h on demand in us-east-1",
                       chosen.name, chosen.cpus, chosen.memoryGB, chosen.gpu.map { ", \($0.count)× \($0.model)" } ?? "", Self.describe(spec.resources), chosen.hourlyPrice))
        }
        let user = spec.sshUser ?? "ubuntu"
        let image = try await image(spec, ec2: provisioner.ec2, say: say)
        var plan = AWSProvisioner.Plan(
            cluster: spec.name, nodes: spec.numNodes, imageId: image.imageId, instanceType: type, publicKey: publicKey,
            creator: environment["USER"] ?? "yonder")
        plan.spot = spec.resources.useSpot
        plan.rootVolume = spec.resources.diskSizeGB.map { (image.rootDeviceName ?? "/dev/sda1", $0) }
        plan.sshCIDR = spec.sshCIDR ?? "0.0.0.0/0"
        plan.userData = Self.userData(user: user)
        // Autostop shuts a node down from inside: stopped, or terminated with `down`.
        plan.shutdownBehavior = spec.autostop?.down == true ? "terminate" : "stop"
        let outcome: AWSProvisioner.Outcome
        do {
            outcome = try await provisioner.up(plan) { say($0) }
        } catch {
            throw ClusterError(.providerFailed, "cluster \(spec.name): \(error.code): \(error.message)")
        }
        made.withLock { $0 = outcome }
        if !outcome.leaked.isEmpty {
            say("warning: instances tagged for cluster \(spec.name) beyond its \(spec.numNodes) node(s), still running and costing: \(outcome.leaked.joined(separator: ", ")); `yonder down \(spec.name)` terminates them")
        }
        let made = Set(outcome.madeInstances)
        var endpoints: [NodeEndpoint] = []
        for node in outcome.nodes {
            let instance = node.instance
            let address = spec.sshProxyCommand != nil ? (instance.privateIpAddress ?? instance.ipAddress) : instance.ipAddress
            guard let address else {
                throw ClusterError(.providerFailed, "cluster \(spec.name): instance \(instance.instanceId) (node \(node.rank)) has no public address; give ssh_proxy_command to reach it through a bastion in its network")
            }
            var endpoint = NodeEndpoint(
                host: address, port: 22, user: user, identityFile: identity, pinnedHostKey: nil, acceptNewHostKeys: true, sshdProcessID: nil)
            endpoint.proxyCommand = spec.sshProxyCommand
            endpoint.instanceID = instance.instanceId
            endpoint.clusterAddress = instance.privateIpAddress
            endpoint.isNew = made.contains(instance.instanceId)
            endpoints.append(endpoint)
        }
        // A booting instance refuses logins for a while: wait for a real command to run.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (rank, endpoint) in endpoints.enumerated() {
                group.addTask { try await Self.waitForSSH(endpoint, rank: rank, cluster: spec.name, progress: progress) }
            }
            try await group.waitForAll()
        }
        return endpoints
    }

    /// `i-… (type, spot or on demand, state)` for each of `ids` EC2 reports; empty when EC2
    /// cannot be asked (the error then shows as each node's "not found").
    /// The instances `ids` as EC2 reports them, by id; empty when EC2 cannot be asked.
    func instances(_ ids: [String]) async -> [String: EC2.Instance] {
        guard !ids.isEmpty, let provisioner = try? provisioner(spec), let instances = try? await provisioner.ec2.instances(ids: ids) else { return [:] }
        return Dictionary(instances.map { ($0.instanceId, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// `i-0abc (g5.xlarge, spot, running)`.
    static func describe(_ instance: EC2.Instance) -> String {
        "\(instance.instanceId) (\(instance.instanceType ?? "?"), \(instance.instanceLifecycle == "spot" ? "spot" : "on demand"), \(instance.instanceState.name))"
    }

    /// Terminates the node's instance (not waiting); `finishDown` removes the rest.
    func release(_ node: NodeEndpoint) async {
        guard let id = node.instanceID, let provisioner = try? provisioner(spec) else { return }
        try? await provisioner.ec2.terminate([id])
    }

    func undoProvision(progress: @escaping @Sendable (ClusterProgress) -> Void) async {
        guard let outcome = made.withLock({ $0 }), let provisioner = try? provisioner(spec) else { return }
        let left = await provisioner.undo(outcome) { text in progress(ClusterProgress(node: nil, step: "aws", detail: text, elapsed: .zero)) }
        if !left.isEmpty {
            progress(ClusterProgress(node: nil, step: "aws", detail: "could not remove \(left.joined(separator: ", ")); `yonder down \(spec.name)` removes what is tagged for the cluster"))
        }
    }

    func finishDown(_ spec: ClusterSpec, progress: @escaping @Sendable (ClusterProgress) -> Void) async throws {
        let provisioner = try provisioner(spec)
        let left: [String]
        do {
            left = try await provisioner.down(cluster: spec.name) { text in
                progress(ClusterProgress(node: nil, step: "aws", detail: text, elapsed: .zero))
            }
        } catch {
            throw ClusterError(.providerFailed, "cluster \(spec.name) is not down: \(error.code): \(error.message); run `yonder down \(spec.name)` again")
        }
        guard left.isEmpty else {
            throw ClusterError(.providerFailed, "cluster \(spec.name) is not down: still in AWS: \(left.joined(separator: ", ")); run `yonder down \(spec.name)` again")
        }
    }

    /// The private key the nodes let in: the spec's `identity_file`, else a key of the
    /// cluster's own, made once in `~/.yonder/keys`.
    static func identity(_ spec: ClusterSpec) throws -> String {
        if let given = spec.identityFile {
            let path = NSString(string: given).expandingTildeInPath
            guard FileManager.default.fileExists(atPath: path + ".pub") else {
                throw ClusterError(.invalidSpec, "cluster \(spec.name): identity_file \(given) has no public key beside it (\(given).pub), which the aws provider imports as the key pair")
            }
            return path
        }
        let folder = ClusterState.home.appendingPathComponent("keys")
        let path = folder.appendingPathComponent("aws-\(spec.name)").path
        if !FileManager.default.fileExists(atPath: path) {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            _ = try ChildProcess.run("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "yonder-\(spec.name)", "-f", path])
        }
        return path
    }

    /// Boot script: Docker where the AMI lacks it, started, usable by the SSH user.
    static func userData(user: String) -> String {
        """
        #!/bin/sh
        # Yonder: make sure Docker runs and \(user) may use it.
        if ! command -v docker >/dev/null 2>&1; then
            (command -v apt-get >/dev/null && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io) \\
                || (command -v dnf >/dev/null && dnf install -y -q docker) \\
                || (command -v yum >/dev/null && yum install -y -q docker)
        fi
        systemctl enable --now docker 2>/dev/null || service docker start
        usermod -aG docker \(user) 2>/dev/null || true
        """
    }

    static func describe(_ resources: ClusterSpec.Resources) -> String {
        var parts: [String] = []
        parts.append("\(resources.cpus.map { String(format: "%g", $0) } ?? "2")+ vCPUs")
        if let memory = resources.memoryGB { parts.append(String(format: "%g+ GiB", memory)) }
        if let gpus = resources.accelerators { parts.append("\(gpus.count)× \(gpus.name)") }
        return parts.joined(separator: ", ")
    }

    static func waitForSSH(_ endpoint: NodeEndpoint, rank: Int, cluster: String, progress: @escaping @Sendable (ClusterProgress) -> Void) async throws {
        let start = ContinuousClock.now
        var lastError = ""
        while true {
            do {
                let session = try await endpoint.connect()
                let result = try await session.run("true")
                await session.close()
                if result.status == .exited(0) { return }
                lastError = "a test command ended with \(result.status)"
            } catch {
                lastError = "\(error)"
            }
            guard ContinuousClock.now - start < sshTimeout else {
                throw ClusterError(.providerFailed, "cluster \(cluster): node \(rank) (instance \(endpoint.instanceID ?? "?"), \(endpoint.user)@\(endpoint.host)) did not let the cluster's key in within \(sshTimeout): \(lastError)")
            }
            progress(ClusterProgress(node: rank, step: "ssh", detail: "waiting for \(endpoint.host) to accept logins (\(lastError))", elapsed: ContinuousClock.now - start))
            try await Task.sleep(for: .seconds(3))
        }
    }
}
