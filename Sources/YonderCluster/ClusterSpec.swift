import Foundation
/// What a cluster is: its nodes, the image they run, and what each node needs.
///
/// Written in YAML with the field names SkyPilot and dstack users already know:
///
/// ```yaml
/// name: demo
/// provider: local              # local (the default) or ssh
/// image_id: docker:yonder/debian:bookworm
/// num_nodes: 1
/// resources:
///   cpus: 2
///   memory: 4                  # GB
///   accelerators: A100:1       # or gpus:
///   shm_size: 2g
///   use_spot: false
/// envs:
///   MODEL: small
/// ```
public struct ClusterSpec: Codable, Sendable, Equatable {
    /// The cluster's name: letters, digits, `-` and `_`, starting with a letter or digit.
    public var name: String
    /// Where the nodes come from.
    public var provider: Provider
    /// The Docker image each node runs, without the `docker:` prefix; nil runs the agent on
    /// the node itself.
    public var image: String?
    /// How many nodes.
    public var numNodes: Int
    /// What each node needs.
    public var resources: Resources
    /// Environment variables for the container (and the agent in it).
    public var envs: [String: String]
    /// For the `ssh` provider: the machines, as `user@host` or `user@host:port`.
    public var hosts: [String]
    /// For the `ssh` provider: the private key to log in with.
    public var identityFile: String?
    /// For the `ssh` provider: record unknown host keys on first use (else they are refused).
    public var acceptNewHostKeys: Bool
    /// For the `ssh` provider: a command that carries each node's SSH connection instead of
    /// TCP, as OpenSSH's `ProxyCommand` (SkyPilot's `ssh_proxy_command`): e.g.
    /// `ssh -W %h:%p jump.example.com` through a jump host. `%h`, `%p`, `%r` are the node's
    /// host, port and user.
    public var sshProxyCommand: String?
    /// A custom agent executable (statically linked) to run instead of `yonder-agent`.
    public var agent: String?
    /// A custom agent that `up` builds from the user's package (instead of `agent`).
    public var agentProduct: AgentProduct?

    /// Where nodes come from.
    public enum Provider: String, Codable, Sendable, CaseIterable {
        /// This machine: Yonder starts a private sshd per node on 127.0.0.1 and uses the local
        /// Docker engine.
        case local
        /// Existing machines reached over SSH.
        case ssh
        /// EC2 instances Yonder creates in the user's AWS account, and deletes at `down`.
        case aws
    }

    /// For `aws`: the region (else `AWS_REGION`, `AWS_DEFAULT_REGION`, or the profile's).
    public var region: String?
    /// For `aws`: the AMI the instances boot: an id (`ami-…`), or `ssm:NAME`, an SSM parameter
    /// holding one. Without it, AWS's public parameter of Canonical's Ubuntu 22.04 (CPU nodes)
    /// or of the Deep Learning AMI (GPU nodes, with the NVIDIA driver and container toolkit).
    public var ami: String?
    /// For `aws`: the user the AMI lets in with the cluster's key (`ubuntu` by default).
    public var sshUser: String?
    /// For `aws`: who may reach the nodes' SSH port, as an IPv4 CIDR (all by default, as
    /// SkyPilot does; the key is the only way in).
    public var sshCIDR: String?

    /// An image built on each node from a folder of this machine, instead of one pulled:
    /// `image_id: {build: ., dockerfile: Dockerfile}`.
    public var imageBuild: ImageBuild?

    /// A Docker build: its context folder and Dockerfile. The context (less what its
    /// `.dockerignore` names) is hashed; the image is tagged `yonder-build/NAME:HASH` and
    /// built on a node only when the node lacks that tag, so an unchanged context never
    /// rebuilds.
    public struct ImageBuild: Codable, Sendable, Equatable {
        /// The context folder (relative to the spec's folder in a spec file).
        public var context: String
        /// The Dockerfile, relative to the context; `Dockerfile` by default.
        public var dockerfile: String?
        /// A repository (`REGISTRY/REPO`, no tag) to build into once, on node 0, and push
        /// to, from which the other nodes pull; nil builds on every node.
        public var push: String?

        /// A build of `context` with `dockerfile`, pushed to `push` if given.
        public init(context: String, dockerfile: String? = nil, push: String? = nil) {
            self.context = context
            self.dockerfile = dockerfile
            self.push = push
        }
    }

    /// Stop the nodes after they have been idle this long; nil never stops them.
    public var autostop: Autostop?

    /// Shell commands run once in each new container, on every node, before `up` reports the
    /// cluster up (SkyPilot's `setup`): their output is shown, and their failure fails `up`.
    /// Run again when they change.
    public var setup: String?
    /// Shell commands `yonder launch` runs on every node (SkyPilot's `run`, dstack's
    /// `commands`).
    public var run: String?
    /// A folder of this machine kept in sync with each container's working folder
    /// (`/yonder/workdir`), where `setup` and `run` start: before the setup at `up`, and
    /// before each `yonder launch`. Only changed files move (by content hash); deleted ones
    /// are deleted; `.gitignore` and `.yonderignore` patterns are left out.
    public var workdir: String?
    /// Files or folders of this machine kept in sync with paths in each container
    /// (SkyPilot's `file_mounts`, `REMOTE_PATH: LOCAL_PATH`), as `workdir` is.
    public var fileMounts: [String: String]?
    /// Paths in the workdir that `yonder launch` copies back to the same paths in the local
    /// workdir once the run has ended (dstack's `artifacts`): only files whose content
    /// differs move. With more than one node, node N's go to `PATH/node-N`. The workdir sync
    /// leaves these paths out.
    public var artifacts: [String]?

    /// When an idle cluster stops itself, and how.
    ///
    /// A node is idle when no call, exec, object call, file transfer or `yonder ssh` session
    /// has been active on it for `idleSeconds`. A watcher on the node itself (not on the
    /// client) then stops the container (`local`, `ssh`) or the machine (`aws`); with `down`,
    /// it removes the container, or terminates the instance, instead. The next `yonder up`
    /// brings the cluster back; what lived in the container's memory (objects) is lost.
    public struct Autostop: Codable, Sendable, Equatable, CustomStringConvertible {
        /// How long a node may be idle, in seconds.
        public var idleSeconds: Int
        /// Remove the container, or terminate the instance, rather than stop it.
        public var down: Bool

        /// Stop (or, with `down`, remove) after `idleSeconds` without activity.
        public init(idleSeconds: Int, down: Bool = false) {
            self.idleSeconds = idleSeconds
            self.down = down
        }

        /// `30m idle, then stop`.
        public var description: String {
            let seconds = idleSeconds
            let amount = seconds % 3600 == 0 ? "\(seconds / 3600)h" : seconds % 60 == 0 ? "\(seconds / 60)m" : "\(seconds)s"
            return "\(amount) idle, then \(down ? "down" : "stop")"
        }
    }

    /// What each node needs.
    public struct Resources: Codable, Sendable, Equatable {
        /// CPUs for the container (`docker run --cpus`).
        public var cpus: Double?
        /// Memory in GB (`docker run --memory`).
        public var memoryGB: Double?
        /// GPUs, as `NAME:COUNT` (`docker run --gpus COUNT`).
        public var accelerators: Accelerators?
        /// Shared memory size, as Docker takes it (`2g`, `512m`).
        public var shmSize: String?
        /// Spot or interruptible capacity (used by cloud providers).
        public var useSpot: Bool
        /// For `aws`: the instance type; without it, the cheapest type of Yonder's catalog
        /// that has the cpus, memory and accelerators asked for.
        public var instanceType: String?
        /// For `aws`: the root volume's size in GB.
        public var diskSizeGB: Int?

        /// No limits.
        public init(cpus: Double? = nil, memoryGB: Double? = nil, accelerators: Accelerators? = nil, shmSize: String? = nil, useSpot: Bool = false) {
            self.cpus = cpus
            self.memoryGB = memoryGB
            self.accelerators = accelerators
            self.shmSize = shmSize
            self.useSpot = useSpot
        }
    }

    /// A GPU request: a name and a count.
    public struct Accelerators: Codable, Sendable, Equatable {
        /// The GPU model, e.g. "A100".
        public var name: String
        /// How many.
        public var count: Int

        /// A request for `count` GPUs of model `name`.
        public init(name: String, count: Int) {
            self.name = name
            self.count = count
        }
    }

    /// A spec with defaults for everything but the name.
    public init(
        name: String, provider: Provider = .local, image: String? = nil, numNodes: Int = 1,
        resources: Resources = Resources(), envs: [String: String] = [:], hosts: [String] = [],
        identityFile: String? = nil, acceptNewHostKeys: Bool = false, agent: String? = nil,
        agentProduct: AgentProduct? = nil, sshProxyCommand: String? = nil, autostop: Autostop? = nil
    ) {
        self.autostop = autostop
        self.sshProxyCommand = sshProxyCommand
        self.name = name
        self.provider = provider
        self.image = image
        self.numNodes = numNodes
        self.resources = resources
        self.envs = envs
        self.hosts = hosts
        self.identityFile = identityFile
        self.acceptNewHostKeys = acceptNewHostKeys
        self.agent = agent
        self.agentProduct = agentProduct
    }

    /// Checks what a spec built in Swift could get wrong (YAML specs are checked as they are
    /// read): the name, which becomes file and container names, the hosts, the node count,
    /// the environment's names. `Cluster.up` calls it first.
    public func validate() throws {
        try Self.checkName(name)
        guard (1...64).contains(numNodes) else {
            throw ClusterError(.invalidSpec, "cluster \(name): numNodes is \(numNodes); allowed: 1 to 64")
        }
        if let image, image.isEmpty || image.contains(where: { $0.isWhitespace }) {
            throw ClusterError(.invalidSpec, "cluster \(name): the image \"\(image)\" is not an image name (REGISTRY/IMAGE:TAG)")
        }
        switch provider {
        case .ssh:
            guard !hosts.isEmpty else {
                throw ClusterError(.invalidSpec, "cluster \(name): the ssh provider needs hosts (user@host or user@host:port)")
            }
            for host in hosts where SSHHost(host) == nil {
                throw ClusterError(.invalidSpec, "cluster \(name): \"\(host)\" is not user@host or user@host:port")
            }
            guard hosts.count == numNodes else {
                throw ClusterError(.invalidSpec, "cluster \(name): \(numNodes) nodes but \(hosts.count) hosts; give one host per node")
            }
        case .aws:
            guard hosts.isEmpty else {
                throw ClusterError(.invalidSpec, "cluster \(name): the aws provider makes its own machines; hosts are for the ssh provider")
            }
            if let ami, !(ami.hasPrefix("ami-") || ami.hasPrefix("ssm:/")) {
                throw ClusterError(.invalidSpec, "cluster \(name): ami \"\(ami)\" is neither an AMI id (ami-…) nor an SSM parameter (ssm:/aws/service/…)")
            }
            if let cidr = sshCIDR, cidr.range(of: #"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$"#, options: .regularExpression) == nil {
                throw ClusterError(.invalidSpec, "cluster \(name): ssh_cidr \"\(cidr)\" is not an IPv4 CIDR such as 203.0.113.0/24")
            }
        case .local:
            guard hosts.isEmpty else {
                throw ClusterError(.invalidSpec, "cluster \(name): only the ssh provider takes hosts")
            }
            guard sshProxyCommand == nil else {
                throw ClusterError(.invalidSpec, "cluster \(name): the local provider reaches its nodes directly; ssh_proxy_command is for the ssh and aws providers")
            }
        }
        if image != nil && imageBuild != nil {
            throw ClusterError(.invalidSpec, "cluster \(name): give an image to pull or one to build, not both")
        }
        if let autostop, autostop.idleSeconds < 1 {
            throw ClusterError(.invalidSpec, "cluster \(name): autostop after \(autostop.idleSeconds) s; give at least 1 second")
        }
        if agent != nil && agentProduct != nil {
            throw ClusterError(.invalidSpec, "cluster \(name): give the agent as a path or as a product to build, not both")
        }
        if let product = agentProduct?.product, product.isEmpty || product.contains(where: { $0.isWhitespace || $0 == "/" }) {
            throw ClusterError(.invalidSpec, "cluster \(name): \"\(product)\" is not a product name")
        }
        for key in envs.keys where key.range(of: #"^[A-Za-z_][A-Za-z0-9_]*$"#, options: .regularExpression) == nil {
            throw ClusterError(.invalidSpec, "cluster \(name): \"\(key)\" is not an environment variable name (letters, digits and _)")
        }
    }

    /// Checks a cluster name: letters, digits, - and _, up to 63, starting with a letter or
    /// digit (it names files under ~/.yonder and containers on the nodes).
    public static func checkName(_ name: String) throws {
        guard name.range(of: #"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"#, options: .regularExpression) != nil else {
            throw ClusterError(.invalidSpec, "\"\(name)\" is not a cluster name; use letters, digits, - and _ (up to 63, starting with a letter or digit)")
        }
    }

    /// The environment of the agent on node `rank`, as `NAME=VALUE`: `YONDER_CLUSTER`,
    /// `YONDER_NODE_RANK` and `YONDER_NUM_NODES`, then the spec's envs by name.
    public func agentEnvironment(rank: Int) -> [String] {
        ["YONDER_CLUSTER=\(name)", "YONDER_NODE_RANK=\(rank)", "YONDER_NUM_NODES=\(numNodes)"]
            + envs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }
}
