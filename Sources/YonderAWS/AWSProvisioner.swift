import Foundation

/// Makes, finds and removes the AWS resources of one cluster: a security group that lets SSH
/// in and nothing else, an imported key pair, and one instance per node, all tagged with the
/// cluster's name so that every later `up`, `status` and `down` finds them by tag (the state
/// file is never the only record, and never holds a secret).
public struct AWSProvisioner: Sendable {
    /// The EC2 API used.
    public let ec2: EC2
    /// How long instances may take to reach `running`.
    public var runningTimeout: Duration = .seconds(600)
    /// How long terminated instances may take to be reported `terminated`.
    public var terminationTimeout: Duration = .seconds(600)
    /// Pause between polls of instance states.
    public var pollInterval: Duration = .seconds(2)

    /// A provisioner working through `ec2`.
    public init(ec2: EC2) {
        self.ec2 = ec2
    }

    /// What a cluster is made of.
    public struct Plan: Sendable {
        /// The cluster's name, in every tag and resource name.
        public var cluster: String
        /// How many nodes (ranks 0 … nodes − 1).
        public var nodes: Int
        /// The AMI.
        public var imageId: String
        /// The instance type.
        public var instanceType: String
        /// Spot instead of on-demand.
        public var spot = false
        /// The root volume in GB, and the AMI's root device name; nil keeps the AMI's.
        public var rootVolume: (device: String, gigabytes: Int)?
        /// Who may reach SSH (tcp/22): an IPv4 CIDR.
        public var sshCIDR = "0.0.0.0/0"
        /// The OpenSSH public key authorized on the nodes (imported as the key pair).
        public var publicKey: String
        /// The user-data script each instance boots with.
        public var userData: String?
        /// Who made the cluster, for the `yonder-creator` tag.
        public var creator: String
        /// What a shutdown from inside a node does (`stop`, or `terminate` for autostop with
        /// `down`); set on new and reused instances alike. Nil leaves EC2's default (stop).
        public var shutdownBehavior: String?

        /// A plan of `nodes` instances of `instanceType` from `imageId`.
        public init(cluster: String, nodes: Int, imageId: String, instanceType: String, publicKey: String, creator: String) {
            self.cluster = cluster
            self.nodes = nodes
            self.imageId = imageId
            self.instanceType = instanceType
            self.publicKey = publicKey
            self.creator = creator
        }

        /// The name of the group and the key pair: `yonder-CLUSTER`.
        public var resourceName: String { "yonder-\(cluster)" }
    }

    /// One node's instance.
    public struct Node: Sendable {
        /// Its rank.
        public var rank: Int
        /// Its instance.
        public var instance: EC2.Instance
    }

    /// What `up` did and found.
    public struct Outcome: Sendable {
        /// The nodes, by rank, all running.
        public var nodes: [Node]
        /// Instances of the cluster beyond its nodes (a second instance of one rank, or a rank
        /// past the last): a leak, by instance id, for the caller to report.
        public var leaked: [String]
        /// What this `up` made (for messages): `security group sg-…`, `instance i-… (node 1)`, …
        public var made: [String]
        /// The instances this `up` started (to terminate again if what follows fails).
        public var madeInstances: [String]
        /// The security group this `up` made, if it made one.
        public var madeGroup: String?
        /// The key pair this `up` imported, if it did.
        public var madeKey: String?
    }

    /// The tags of resources of `cluster`.
    public static func tags(cluster: String, creator: String) -> [EC2.Tag] {
        [EC2.Tag(key: "yonder-cluster", value: cluster), EC2.Tag(key: "yonder-creator", value: creator)]
    }

    /// Instance states in which an instance still counts (and costs).
    public static let liveStates = ["pending", "running", "stopping", "stopped", "shutting-down"]

    /// Makes what is missing and reuses what is there: the group, the key pair, an instance
    /// per rank (stopped ones are started), then waits until every node runs. If any step
    /// fails, what this call made is removed again before the error is thrown.
    public func up(_ plan: Plan, progress: @Sendable (String) -> Void = { _ in }) async throws(AWSError) -> Outcome {
        var made: [String] = []
        var madeGroup: String?
        var madeKey: String?
        var madeInstances: [String] = []
        do {
            let tags = Self.tags(cluster: plan.cluster, creator: plan.creator)
            let clusterTag = ["yonder-cluster": plan.cluster]

            let group: String
            if let existing = try await ec2.securityGroups(tagged: clusterTag).first {
                group = existing.groupId
                progress("security group \(group) reused")
            } else {
                group = try await ec2.createSecurityGroup(
                    name: plan.resourceName, description: "Yonder cluster \(plan.cluster): SSH only", tags: tags)
                madeGroup = group
                made.append("security group \(group)")
                try await ec2.allowIngress(group: group, port: 22, cidr: plan.sshCIDR)
                progress("security group \(group) made, admitting tcp/22 from \(plan.sshCIDR)")
            }

            if try await ec2.keyPairs(tagged: clusterTag).isEmpty {
                try await ec2.importKeyPair(name: plan.resourceName, publicKey: plan.publicKey, tags: tags)
                madeKey = plan.resourceName
                made.append("key pair \(plan.resourceName)")
                progress("key pair \(plan.resourceName) imported")
            }

            let live = try await ec2.instances(tagged: clusterTag, states: Self.liveStates.filter { $0 != "shutting-down" })
            var byRank: [Int: EC2.Instance] = [:]
            var leaked: [String] = []
            // The oldest instance of a rank is the node; later ones are the leak.
            for instance in live.sorted(by: { ($0.launchTime ?? "", $0.instanceId) < ($1.launchTime ?? "", $1.instanceId) }) {
                if let rank = instance.tag("yonder-node").flatMap(Int.init), (0..<plan.nodes).contains(rank), byRank[rank] == nil {
                    byRank[rank] = instance
                } else {
                    leaked.append(instance.instanceId)
                }
            }
            if !leaked.isEmpty {
                progress("cluster \(plan.cluster) has \(leaked.count) instance(s) beyond its \(plan.nodes) node(s): \(leaked.joined(separator: ", ")); terminate them, or `yonder down \(plan.cluster)` removes every instance it tagged")
            }
            let stopped = byRank.values.filter { $0.instanceState.name == "stopped" }.map(\.instanceId)
            if !stopped.isEmpty {
                progress("starting stopped instance(s) \(stopped.joined(separator: ", "))")
                try await ec2.start(stopped)
            }
            if let behavior = plan.shutdownBehavior {
                for instance in byRank.values { try await ec2.setShutdownBehavior(instance.instanceId, behavior) }
            }
            for rank in 0..<plan.nodes where byRank[rank] == nil {
                var launch = EC2.Launch(imageId: plan.imageId, instanceType: plan.instanceType)
                launch.keyName = plan.resourceName
                launch.securityGroupIds = [group]
                launch.userData = plan.userData
                launch.spot = plan.spot
                launch.rootVolume = plan.rootVolume
                launch.shutdownBehavior = plan.shutdownBehavior
                launch.tags = tags + [EC2.Tag(key: "yonder-node", value: String(rank)), EC2.Tag(key: "Name", value: "\(plan.resourceName)-\(rank)")]
                let instance = try await run(launch, rank: rank, progress: progress)
                madeInstances.append(instance.instanceId)
                made.append("instance \(instance.instanceId) (node \(rank))")
                progress("node \(rank): \(plan.spot ? "spot " : "")\(plan.instanceType) instance \(instance.instanceId) started")
                byRank[rank] = instance
            }

            let ids = (0..<plan.nodes).compactMap { byRank[$0]?.instanceId }
            let running = try await waitUntilRunning(ids, cluster: plan.cluster, progress: progress)
            let nodes = (0..<plan.nodes).compactMap { rank in
                running.first { $0.instanceId == byRank[rank]?.instanceId }.map { Node(rank: rank, instance: $0) }
            }
            return Outcome(nodes: nodes, leaked: leaked, made: made, madeInstances: madeInstances, madeGroup: madeGroup, madeKey: madeKey)
        } catch {
            var failure = error
            let left = await undo(instances: madeInstances, group: madeGroup, key: madeKey, progress: progress)
            failure.message += left.isEmpty
                ? (made.isEmpty ? "" : "; what this up made was removed (\(made.joined(separator: ", ")))")
                : "; removing what this up made failed, so these are left: \(left.joined(separator: ", ")); run `yonder down \(plan.cluster)`"
            throw failure
        }
    }

    /// AWS's codes for "no capacity for this type here now", on-demand or spot: worth trying
    /// the region's other zones.
    static let capacityCodes: Set<String> = [
        "InsufficientInstanceCapacity", "InsufficientCapacity", "InsufficientHostCapacity", "Unsupported",
        "UnfulfillableCapacity", "SpotMaxPriceTooLow",
    ]

    /// Starts one node's instance; when AWS has no capacity for the type where it tried, tries
    /// each of the region's other zones before giving up, naming the type and the zones. A
    /// quota refusal says which quota to raise.
    func run(_ launch: EC2.Launch, rank: Int, progress: @Sendable (String) -> Void) async throws(AWSError) -> EC2.Instance {
        let kind = "\(launch.spot ? "spot " : "")\(launch.instanceType)"
        var refusal: AWSError
        do {
            return try await ec2.run(launch)
        } catch {
            refusal = error
        }
        guard Self.capacityCodes.contains(refusal.code), launch.availabilityZone == nil else { throw Self.advised(refusal, for: launch) }
        var tried = ["the zone AWS chose"]
        for zone in try await ec2.availabilityZones() {
            progress("node \(rank): no \(kind) capacity in \(tried.last!) (\(refusal.code)); trying \(zone)")
            var attempt = launch
            attempt.availabilityZone = zone
            do {
                return try await ec2.run(attempt)
            } catch where Self.capacityCodes.contains(error.code) {
                refusal = error
                tried.append(zone)
            } catch {
                throw Self.advised(error, for: launch)
            }
        }
        throw AWSError(
            code: refusal.code,
            message: "no \(kind) capacity in any zone of the region (tried \(tried.joined(separator: ", "))): \(refusal.message); try another instance type or region\(launch.spot ? ", or on-demand (use_spot: false)" : ""), or again later")
    }

    /// `error`, with the quota to raise added when it is a quota refusal.
    static func advised(_ error: AWSError, for launch: EC2.Launch) -> AWSError {
        guard quotaCodes.contains(error.code) else { return error }
        return AWSError(code: error.code, message: "\(error.message) (\(quotaAdvice(instanceType: launch.instanceType, spot: launch.spot)))")
    }

    /// AWS's codes for a vCPU or instance-count quota reached.
    static let quotaCodes: Set<String> = ["VcpuLimitExceeded", "MaxSpotInstanceCountExceeded", "InstanceLimitExceeded"]

    /// Which EC2 quota limits `instanceType` (on-demand or spot), and where to raise it.
    public static func quotaAdvice(instanceType: String, spot: Bool) -> String {
        let family = instanceType.prefix { $0.isLetter }.lowercased()
        let (name, code): (String, String?)
        switch family {
        case "g", "vt": (name, code) = spot ? ("All G and VT Spot Instance Requests", "L-3819A6DF") : ("Running On-Demand G and VT instances", "L-DB2E81BA")
        case "p": (name, code) = spot ? ("All P Spot Instance Requests", "L-7212CCBC") : ("Running On-Demand P instances", "L-417A185B")
        case "inf": (name, code) = (spot ? "All Inf Spot Instance Requests" : "Running On-Demand Inf instances", nil)
        case "trn": (name, code) = (spot ? "All Trn Spot Instance Requests" : "Running On-Demand Trn instances", nil)
        case "dl": (name, code) = (spot ? "All DL Spot Instance Requests" : "Running On-Demand DL instances", nil)
        case "x": (name, code) = (spot ? "All X Spot Instance Requests" : "Running On-Demand X instances", nil)
        case "f": (name, code) = (spot ? "All F Spot Instance Requests" : "Running On-Demand F instances", nil)
        default:
            (name, code) = spot
                ? ("All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests", "L-34B43A08")
                : ("Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", "L-1216C47A")
        }
        let page = "https://console.aws.amazon.com/servicequotas/home/services/ec2/quotas" + (code.map { "/\($0)" } ?? "")
        return "the account's EC2 quota \"\(name)\"\(code.map { " (\($0))" } ?? "") counts the vCPUs of \(instanceType); ask AWS to raise it at \(page), or use a smaller type"
    }

    /// Polls until every instance of `ids` runs; an instance that ends (spot reclaimed,
    /// terminated) or a bound that passes fails with the instance named.
    func waitUntilRunning(_ ids: [String], cluster: String, progress: @Sendable (String) -> Void) async throws(AWSError) -> [EC2.Instance] {
        let deadline = ContinuousClock.now + runningTimeout
        var reported = ""
        while true {
            let instances = try await ec2.instances(tagged: ["yonder-cluster": cluster]).filter { ids.contains($0.instanceId) }
            if let gone = instances.first(where: { ["shutting-down", "terminated"].contains($0.instanceState.name) }) {
                throw AWSError(
                    code: "InstanceEnded",
                    message: "instance \(gone.instanceId) of cluster \(cluster) went to \(gone.instanceState.name) while starting (a spot instance reclaimed, or terminated by hand)")
            }
            let waiting = instances.filter { $0.instanceState.name != "running" }
            if waiting.isEmpty && instances.count == ids.count { return instances }
            let line = "waiting for \(waiting.map { "\($0.instanceId) (\($0.instanceState.name))" }.joined(separator: ", ")) to run"
            if line != reported {
                progress(line)
                reported = line
            }
            guard ContinuousClock.now < deadline else {
                throw AWSError(
                    code: "InstanceNotRunning",
                    message: "\(waiting.map { "\($0.instanceId) is still \($0.instanceState.name)" }.joined(separator: ", ")) after \(runningTimeout); see the EC2 console's instance status and system log")
            }
            try? await Task.sleep(for: pollInterval)
        }
    }

    /// Removes what an `up` made (its `Outcome`'s instances, group and key pair) when what
    /// follows it fails; returns what could not be removed.
    public func undo(_ outcome: Outcome, progress: @Sendable (String) -> Void = { _ in }) async -> [String] {
        await undo(instances: outcome.madeInstances, group: outcome.madeGroup, key: outcome.madeKey, progress: progress)
    }

    /// Removes instances, then the group and the key pair; returns what could not be removed.
    private func undo(instances: [String], group: String?, key: String?, progress: @Sendable (String) -> Void) async -> [String] {
        var left: [String] = []
        if !instances.isEmpty {
            do {
                try await ec2.terminate(instances)
                try await waitUntilTerminated(instances, progress: progress)
            } catch {
                left += instances.map { "instance \($0)" }
            }
        }
        if let group {
            do { try await deleteGroup(group) } catch { left.append("security group \(group)") }
        }
        if let key {
            do { try await ec2.deleteKeyPair(key) } catch { left.append("key pair \(key)") }
        }
        return left
    }

    /// Terminates every instance of `cluster`, waits until AWS reports them terminated,
    /// deletes the group (once its network interfaces are gone) and the key pair, then lists
    /// by tag again. Returns what is left: empty means nothing of the cluster remains.
    public func down(cluster: String, progress: @Sendable (String) -> Void = { _ in }) async throws(AWSError) -> [String] {
        let clusterTag = ["yonder-cluster": cluster]
        let live = try await ec2.instances(tagged: clusterTag, states: Self.liveStates).map(\.instanceId)
        if !live.isEmpty {
            progress("terminating \(live.joined(separator: ", "))")
            try await ec2.terminate(live)
            try await waitUntilTerminated(live, progress: progress)
        }
        for group in try await ec2.securityGroups(tagged: clusterTag) {
            progress("deleting security group \(group.groupId)")
            try await deleteGroup(group.groupId)
        }
        for key in try await ec2.keyPairs(tagged: clusterTag) {
            progress("deleting key pair \(key.keyName)")
            try await ec2.deleteKeyPair(key.keyName)
        }
        return try await leftovers(cluster: cluster)
    }

    /// What of `cluster` still exists: live instances, groups, key pairs.
    public func leftovers(cluster: String) async throws(AWSError) -> [String] {
        let clusterTag = ["yonder-cluster": cluster]
        let instances = try await ec2.instances(tagged: clusterTag, states: Self.liveStates).map { "instance \($0.instanceId) (\($0.instanceState.name))" }
        let groups = try await ec2.securityGroups(tagged: clusterTag).map { "security group \($0.groupId)" }
        let keys = try await ec2.keyPairs(tagged: clusterTag).map { "key pair \($0.keyName)" }
        return instances + groups + keys
    }

    private func waitUntilTerminated(_ ids: [String], progress: @Sendable (String) -> Void) async throws(AWSError) {
        let deadline = ContinuousClock.now + terminationTimeout
        while true {
            let states = try await ec2.instances(ids: ids)
            let ending = states.filter { $0.instanceState.name != "terminated" }
            if ending.isEmpty { return }
            guard ContinuousClock.now < deadline else {
                throw AWSError(
                    code: "InstanceNotTerminated",
                    message: "\(ending.map { "\($0.instanceId) is still \($0.instanceState.name)" }.joined(separator: ", ")) after \(terminationTimeout)")
            }
            try? await Task.sleep(for: pollInterval)
        }
    }

    /// Deletes a group, retrying `DependencyViolation` while terminated instances' network
    /// interfaces go away.
    private func deleteGroup(_ id: String) async throws(AWSError) {
        let deadline = ContinuousClock.now + .seconds(300)
        while true {
            do {
                try await ec2.deleteSecurityGroup(id)
                return
            } catch where error.code == "DependencyViolation" && ContinuousClock.now < deadline {
                try? await Task.sleep(for: .seconds(5))
            } catch where error.code == "InvalidGroup.NotFound" {
                return
            }
        }
    }
}
