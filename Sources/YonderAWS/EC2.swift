public import Foundation

/// The EC2 calls the AWS provider makes, over the Query API (version 2016-11-15).
public struct EC2: Sendable {
    /// The Query client the calls go through.
    public let client: AWSQueryClient

    /// EC2 in `region` at `endpoint`.
    public init(endpoint: URL, region: String, credentials: AWSCredentials) {
        client = AWSQueryClient(service: "ec2", version: "2016-11-15", endpoint: endpoint, region: region, credentials: credentials)
    }

    /// A resource tag.
    public struct Tag: Decodable, Sendable, Hashable {
        /// The tag's name.
        public var key: String
        /// Its value.
        public var value: String

        /// Makes a tag.
        public init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    /// An instance as `DescribeInstances` reports it.
    public struct Instance: Decodable, Sendable {
        /// `i-…`.
        public var instanceId: String
        /// The AMI it was started from.
        public var imageId: String?
        /// `t3.large`, …
        public var instanceType: String?
        /// Its state.
        public var instanceState: State
        /// The private address.
        public var privateIpAddress: String?
        /// The public address, once it has one.
        public var ipAddress: String?
        /// `spot` for a spot instance; absent for on-demand.
        public var instanceLifecycle: String?
        /// The key pair named at launch.
        public var keyName: String?
        /// When it was launched, ISO 8601 as EC2 writes it.
        public var launchTime: String?
        /// Where it runs.
        public var placement: Placement?
        /// Its tags.
        public var tagSet: ItemList<Tag>?
        /// Its security groups.
        public var groupSet: ItemList<GroupReference>?

        /// The state's name: `pending`, `running`, `stopping`, `stopped`, `shutting-down`, `terminated`.
        public struct State: Decodable, Sendable {
            /// The name.
            public var name: String
        }

        /// The availability zone.
        public struct Placement: Decodable, Sendable {
            /// e.g. `us-east-1a`.
            public var availabilityZone: String?
        }

        /// A security group an instance is in.
        public struct GroupReference: Decodable, Sendable {
            /// `sg-…`.
            public var groupId: String
        }

        /// The value of tag `key`, if set.
        public func tag(_ key: String) -> String? {
            tagSet?.items.first { $0.key == key }?.value
        }
    }

    /// A security group as `DescribeSecurityGroups` reports it.
    public struct SecurityGroup: Decodable, Sendable {
        /// `sg-…`.
        public var groupId: String
        /// Its name.
        public var groupName: String
        /// What it lets in.
        public var ipPermissions: ItemList<Permission>?
        /// Its tags.
        public var tagSet: ItemList<Tag>?

        /// One ingress rule.
        public struct Permission: Decodable, Sendable {
            /// `tcp`, `udp`, `icmp` or `-1`.
            public var ipProtocol: String
            /// The first port.
            public var fromPort: Int?
            /// The last port.
            public var toPort: Int?
            /// The IPv4 ranges admitted.
            public var ipRanges: ItemList<Range>?
        }

        /// An IPv4 range.
        public struct Range: Decodable, Sendable {
            /// e.g. `0.0.0.0/0`.
            public var cidrIp: String
        }
    }

    /// A key pair as `DescribeKeyPairs` reports it.
    public struct KeyPair: Decodable, Sendable {
        /// Its name.
        public var keyName: String
        /// `key-…`.
        public var keyPairId: String?
        /// Its tags.
        public var tagSet: ItemList<Tag>?
    }

    // MARK: Instances

    /// Instances whose tags match every `tags` pair, in any state unless `states` is given.
    public func instances(tagged tags: [String: String], states: [String]? = nil) async throws(AWSError) -> [Instance] {
        try await describeInstances(Self.filters(tags: tags, more: states.map { ["instance-state-name": $0] } ?? [:]))
    }

    /// The instances `ids`, in any state.
    public func instances(ids: [String]) async throws(AWSError) -> [Instance] {
        guard !ids.isEmpty else { return [] }
        return try await describeInstances(ids.enumerated().map { ("InstanceId.\($0.offset + 1)", $0.element) })
    }

    /// `DescribeInstances` with `parameters`, every page.
    private func describeInstances(_ parameters: [(String, String)]) async throws(AWSError) -> [Instance] {
        struct Answer: Decodable {
            var reservationSet: ItemList<Reservation>?
            var nextToken: String?
        }
        struct Reservation: Decodable, Sendable { var instancesSet: ItemList<Instance>? }
        var parameters = parameters
        var found: [Instance] = []
        while true {
            let answer = try await client.call("DescribeInstances", parameters, as: Answer.self)
            found += (answer.reservationSet?.items ?? []).flatMap { $0.instancesSet?.items ?? [] }
            guard let next = answer.nextToken, !next.isEmpty else { return found }
            parameters.removeAll { $0.0 == "NextToken" }
            parameters.append(("NextToken", next))
        }
    }

    /// What `RunInstances` needs for one instance.
    public struct Launch: Sendable {
        /// The AMI.
        public var imageId: String
        /// The instance type.
        public var instanceType: String
        /// The key pair to authorize.
        public var keyName: String?
        /// Security groups to put it in.
        public var securityGroupIds: [String] = []
        /// The user-data script (sent base64).
        public var userData: String?
        /// A spot instance rather than on-demand.
        public var spot = false
        /// The root volume's size in GB, and the AMI's root device name it applies to.
        public var rootVolume: (device: String, gigabytes: Int)?
        /// An availability zone to start in, or nil for any.
        public var availabilityZone: String?
        /// What a shutdown from inside the instance does: `stop` (EC2's default) or
        /// `terminate`; nil leaves EC2's default.
        public var shutdownBehavior: String?
        /// Tags for the instance and its volumes.
        public var tags: [Tag] = []

        /// A launch of `instanceType` from `imageId`.
        public init(imageId: String, instanceType: String) {
            self.imageId = imageId
            self.instanceType = instanceType
        }
    }

    /// Starts one instance; returns it as first reported (usually `pending`).
    public func run(_ launch: Launch) async throws(AWSError) -> Instance {
        struct Answer: Decodable { var instancesSet: ItemList<Instance> }
        var parameters: [(String, String)] = [
            ("ImageId", launch.imageId), ("InstanceType", launch.instanceType), ("MinCount", "1"), ("MaxCount", "1"),
        ]
        if let keyName = launch.keyName { parameters.append(("KeyName", keyName)) }
        for (index, group) in launch.securityGroupIds.enumerated() {
            parameters.append(("SecurityGroupId.\(index + 1)", group))
        }
        if let userData = launch.userData {
            parameters.append(("UserData", Data(userData.utf8).base64EncodedString()))
        }
        if launch.spot {
            parameters.append(("InstanceMarketOptions.MarketType", "spot"))
            parameters.append(("InstanceMarketOptions.SpotOptions.SpotInstanceType", "one-time"))
        }
        if let root = launch.rootVolume {
            parameters += [
                ("BlockDeviceMapping.1.DeviceName", root.device),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", String(root.gigabytes)),
                ("BlockDeviceMapping.1.Ebs.VolumeType", "gp3"),
                ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true"),
            ]
        }
        if let zone = launch.availabilityZone { parameters.append(("Placement.AvailabilityZone", zone)) }
        if let behavior = launch.shutdownBehavior { parameters.append(("InstanceInitiatedShutdownBehavior", behavior)) }
        if !launch.tags.isEmpty {
            for (index, resource) in ["instance", "volume"].enumerated() {
                parameters.append(("TagSpecification.\(index + 1).ResourceType", resource))
                for (tagIndex, tag) in launch.tags.enumerated() {
                    parameters.append(("TagSpecification.\(index + 1).Tag.\(tagIndex + 1).Key", tag.key))
                    parameters.append(("TagSpecification.\(index + 1).Tag.\(tagIndex + 1).Value", tag.value))
                }
            }
        }
        let answer = try await client.call("RunInstances", parameters, as: Answer.self)
        guard let instance = answer.instancesSet.items.first else {
            throw AWSError(code: "UnreadableAnswer", message: "RunInstances answered with no instance")
        }
        return instance
    }

    /// Sets what a shutdown from inside instance `id` does: `stop` or `terminate`.
    public func setShutdownBehavior(_ id: String, _ behavior: String) async throws(AWSError) {
        _ = try await client.send("ModifyInstanceAttribute", [("InstanceId", id), ("Attribute", "instanceInitiatedShutdownBehavior"), ("Value", behavior)])
    }

    /// What a shutdown from inside instance `id` does (`stop` or `terminate`).
    public func shutdownBehavior(of id: String) async throws(AWSError) -> String? {
        struct Answer: Decodable {
            struct Value: Decodable { var value: String? }
            var instanceInitiatedShutdownBehavior: Value?
        }
        let answer = try await client.call(
            "DescribeInstanceAttribute", [("InstanceId", id), ("Attribute", "instanceInitiatedShutdownBehavior")], as: Answer.self)
        return answer.instanceInitiatedShutdownBehavior?.value
    }

    /// The region's availability zones that are available, by name.
    public func availabilityZones() async throws(AWSError) -> [String] {
        struct Answer: Decodable {
            struct Zone: Decodable { var zoneName: String; var zoneState: String? }
            var availabilityZoneInfo: ItemList<Zone>
        }
        let answer = try await client.call("DescribeAvailabilityZones", [], as: Answer.self)
        return answer.availabilityZoneInfo.items.filter { ($0.zoneState ?? "available") == "available" }.map(\.zoneName)
    }

    /// Terminates `ids` (nothing to do for none).
    public func terminate(_ ids: [String]) async throws(AWSError) {
        guard !ids.isEmpty else { return }
        _ = try await client.send("TerminateInstances", ids.enumerated().map { ("InstanceId.\($0.offset + 1)", $0.element) })
    }

    /// Starts stopped instances `ids`.
    public func start(_ ids: [String]) async throws(AWSError) {
        guard !ids.isEmpty else { return }
        _ = try await client.send("StartInstances", ids.enumerated().map { ("InstanceId.\($0.offset + 1)", $0.element) })
    }

    /// The user-data an instance was started with, decoded from base64.
    public func userData(of id: String) async throws(AWSError) -> String? {
        struct Answer: Decodable {
            struct Value: Decodable { var value: String? }
            var userData: Value?
        }
        let answer = try await client.call("DescribeInstanceAttribute", [("InstanceId", id), ("Attribute", "userData")], as: Answer.self)
        guard let encoded = answer.userData?.value, let data = Data(base64Encoded: encoded) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// An AMI as `DescribeImages` reports it.
    public struct Image: Decodable, Sendable {
        /// `ami-…`.
        public var imageId: String
        /// Its name, e.g. `ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-…`.
        public var name: String?
        /// The device its root volume is attached as (`/dev/sda1`, `/dev/xvda`).
        public var rootDeviceName: String?
    }

    /// The AMI `id`, or nil when the region has none by that id.
    public func image(_ id: String) async throws(AWSError) -> Image? {
        struct Answer: Decodable { var imagesSet: ItemList<Image>? }
        do {
            return try await client.call("DescribeImages", [("ImageId.1", id)], as: Answer.self).imagesSet?.items.first
        } catch where error.code == "InvalidAMIID.NotFound" || error.code == "InvalidAMIID.Malformed" {
            return nil
        }
    }

    // MARK: Security groups

    /// Makes a security group with `tags`; returns its id.
    public func createSecurityGroup(name: String, description: String, tags: [Tag]) async throws(AWSError) -> String {
        struct Answer: Decodable { var groupId: String }
        var parameters: [(String, String)] = [("GroupName", name), ("GroupDescription", description)]
        parameters += Self.tagSpecification("security-group", tags)
        return try await client.call("CreateSecurityGroup", parameters, as: Answer.self).groupId
    }

    /// Lets TCP `port` in from `cidr`.
    public func allowIngress(group: String, port: Int, cidr: String) async throws(AWSError) {
        _ = try await client.send("AuthorizeSecurityGroupIngress", [
            ("GroupId", group), ("IpPermissions.1.IpProtocol", "tcp"), ("IpPermissions.1.FromPort", String(port)),
            ("IpPermissions.1.ToPort", String(port)), ("IpPermissions.1.IpRanges.1.CidrIp", cidr),
        ])
    }

    /// Security groups whose tags match every `tags` pair.
    public func securityGroups(tagged tags: [String: String]) async throws(AWSError) -> [SecurityGroup] {
        struct Answer: Decodable { var securityGroupInfo: ItemList<SecurityGroup>? }
        return try await client.call("DescribeSecurityGroups", Self.filters(tags: tags), as: Answer.self).securityGroupInfo?.items ?? []
    }

    /// Deletes the security group `id`.
    public func deleteSecurityGroup(_ id: String) async throws(AWSError) {
        _ = try await client.send("DeleteSecurityGroup", [("GroupId", id)])
    }

    // MARK: Key pairs

    /// Imports an OpenSSH public key as the key pair `name`, with `tags`.
    public func importKeyPair(name: String, publicKey: String, tags: [Tag]) async throws(AWSError) {
        var parameters: [(String, String)] = [
            ("KeyName", name), ("PublicKeyMaterial", Data(publicKey.utf8).base64EncodedString()),
        ]
        parameters += Self.tagSpecification("key-pair", tags)
        _ = try await client.send("ImportKeyPair", parameters)
    }

    /// Key pairs whose tags match every `tags` pair.
    public func keyPairs(tagged tags: [String: String]) async throws(AWSError) -> [KeyPair] {
        struct Answer: Decodable { var keySet: ItemList<KeyPair>? }
        return try await client.call("DescribeKeyPairs", Self.filters(tags: tags), as: Answer.self).keySet?.items ?? []
    }

    /// Deletes the key pair `name`.
    public func deleteKeyPair(_ name: String) async throws(AWSError) {
        _ = try await client.send("DeleteKeyPair", [("KeyName", name)])
    }

    // MARK: Parameters

    static func filters(tags: [String: String], more: [String: [String]] = [:]) -> [(String, String)] {
        var parameters: [(String, String)] = []
        var index = 0
        for (key, value) in tags.sorted(by: { $0.key < $1.key }) {
            index += 1
            parameters += [("Filter.\(index).Name", "tag:\(key)"), ("Filter.\(index).Value.1", value)]
        }
        for (name, values) in more.sorted(by: { $0.key < $1.key }) {
            index += 1
            parameters.append(("Filter.\(index).Name", name))
            for (valueIndex, value) in values.enumerated() {
                parameters.append(("Filter.\(index).Value.\(valueIndex + 1)", value))
            }
        }
        return parameters
    }

    static func tagSpecification(_ resource: String, _ tags: [Tag]) -> [(String, String)] {
        guard !tags.isEmpty else { return [] }
        var parameters = [("TagSpecification.1.ResourceType", resource)]
        for (index, tag) in tags.enumerated() {
            parameters += [("TagSpecification.1.Tag.\(index + 1).Key", tag.key), ("TagSpecification.1.Tag.\(index + 1).Value", tag.value)]
        }
        return parameters
    }
}
