import Foundation
internal import Yams

extension ClusterSpec {
    /// Reads and checks a spec file. A bad file throws ``ClusterError`` (`invalidSpec`) naming
    /// the file, the line, the field and what is allowed.
    public static func load(from path: String) throws -> ClusterSpec {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist"
            throw ClusterError(.invalidSpec, "cluster spec \(path) \(reason); pass the path of a YAML file (see Examples/)")
        }
        var spec = try parse(String(decoding: data, as: UTF8.self), file: path)
        // A build context is relative to the spec's folder, wherever `yonder` runs.
        // Local folders (a build context, the workdir, mounts) are relative to the spec's folder.
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        func absolute(_ local: String) -> String {
            local.hasPrefix("/") || local.hasPrefix("~") ? NSString(string: local).expandingTildeInPath
                : folder.appendingPathComponent(local).standardizedFileURL.path
        }
        if let context = spec.imageBuild?.context { spec.imageBuild?.context = absolute(context) }
        if let workdir = spec.workdir { spec.workdir = absolute(workdir) }
        spec.fileMounts = spec.fileMounts?.mapValues(absolute)
        return spec
    }

    /// Parses and checks spec text; `file` names it in errors.
    public static func parse(_ yaml: String, file: String = "the spec") throws -> ClusterSpec {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ClusterError(.invalidSpec, "\(file): not valid YAML: \(Self.describe(error))")
        }
        guard let root, let mapping = root.mapping else {
            throw ClusterError(.invalidSpec, "\(file): expected a mapping of fields (name:, image_id:, …) at the top")
        }
        var reader = SpecReader(file: file)
        return try reader.read(mapping)
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            "line \(mark.line): \(problem)"
        default:
            "\(error)"
        }
    }
}

/// Walks the YAML tree field by field, so that every error can say where it is.
private struct SpecReader {
    let file: String

    static let topFields = ["name", "provider", "image_id", "image", "num_nodes", "resources", "envs", "env", "hosts", "identity_file", "accept_new_host_keys", "ssh_proxy_command", "agent",
                            "region", "ami", "ssh_user", "ssh_cidr", "autostop",
                            "setup", "run", "commands", "workdir", "file_mounts", "artifacts"]

    /// Fields of SkyPilot's and dstack's task files that Yonder does not do: named in a clear
    /// error, never ignored.
    static let unsupportedFields: [String: String] = [
        "service": "SkyPilot's serving (service)", "secrets": "SkyPilot's secrets", "config": "SkyPilot's per-task config",
        "volumes": "volumes", "event_callback": "SkyPilot's event_callback", "inputs": "SkyPilot's inputs",
        "outputs": "SkyPilot's outputs", "experimental": "SkyPilot's experimental fields", "type": "dstack's configuration type",
        "ports": "published ports", "python": "dstack's python", "ide": "dstack's ide", "retry": "retries of a task",
        "max_price": "a price limit", "spot_policy": "dstack's spot_policy (use resources.use_spot)",
        "priority": "job priorities", "job_recovery": "SkyPilot's job recovery",
    ]
    static let resourceFields = ["cpus", "memory", "accelerators", "gpus", "shm_size", "use_spot", "image_id", "instance_type", "disk_size", "cloud"]

    func fail(_ node: Node?, _ field: String, _ problem: String) -> ClusterError {
        let line = node?.mark.map { ":\($0.line)" } ?? ""
        return ClusterError(.invalidSpec, "\(file)\(line): \(field): \(problem)")
    }

    mutating func read(_ mapping: Node.Mapping) throws -> ClusterSpec {
        var fields: [String: Node] = [:]
        for (key, value) in mapping {
            guard let name = key.scalar?.string else { throw fail(key, "a key", "keys must be plain names") }
            if let what = Self.unsupportedFields[name] {
                throw fail(key, name, "\(what) is not supported by Yonder; remove it (Yonder reads \(Self.topFields.joined(separator: ", ")))")
            }
            guard Self.topFields.contains(name) else {
                throw fail(key, name, "unknown field; allowed: \(Self.topFields.joined(separator: ", "))")
            }
            if fields[name] != nil { throw fail(key, name, "given twice") }
            fields[name] = value
        }
        guard let nameNode = fields["name"] else {
            throw ClusterError(.invalidSpec, "\(file): name: missing; give the cluster a name (letters, digits, - and _)")
        }
        let name = try string(nameNode, "name")
        guard name.range(of: #"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"#, options: .regularExpression) != nil else {
            throw fail(nameNode, "name", "\"\(name)\" is not allowed; use letters, digits, - and _ (up to 63, starting with a letter or digit)")
        }
        var spec = ClusterSpec(name: name)
        if let node = fields["provider"] {
            let value = try string(node, "provider")
            guard let provider = ClusterSpec.Provider(rawValue: value) else {
                throw fail(node, "provider", "\"\(value)\" is not a provider; allowed: \(ClusterSpec.Provider.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            spec.provider = provider
        }
        let resources = fields["resources"]
        // SkyPilot names the cloud under resources: `cloud: aws` is `provider: aws`.
        if let cloudNode = try resources?.mapping.flatMap({ mapping in try mapping.first { try string($0.key, "resources") == "cloud" }?.value }) {
            let cloud = try string(cloudNode, "resources.cloud").lowercased()
            guard cloud == "aws" else {
                throw fail(cloudNode, "resources.cloud", "\"\(cloud)\" is not a cloud Yonder runs on; it has aws (or provider: local or ssh for machines you have)")
            }
            if let given = fields["provider"], spec.provider != .aws {
                throw fail(given, "provider", "\(spec.provider.rawValue), but resources.cloud says aws; keep one")
            }
            spec.provider = .aws
        }
        let nestedImage = try resources?.mapping.flatMap { mapping in try mapping.first { try string($0.key, "resources") == "image_id" }?.value }
        let imageFields = [("image_id", fields["image_id"]), ("image", fields["image"]), ("resources.image_id", nestedImage)].filter { $0.1 != nil }
        if imageFields.count > 1 {
            throw fail(imageFields[1].1, imageFields[1].0, "the image is already given by \(imageFields[0].0); keep one")
        }
        if let (field, node) = imageFields.first, let node, let mapping = node.mapping {
            var context: String?, dockerfile: String?, push: String?
            for (key, value) in mapping {
                switch try string(key, field) {
                case "build": context = try string(value, "\(field).build")
                case "dockerfile": dockerfile = try string(value, "\(field).dockerfile")
                case "push":
                    let repository = try string(value, "\(field).push")
                    let last = repository.split(separator: "/").last ?? ""
                    guard !repository.isEmpty, !last.contains(":"), !repository.contains("@"), repository == repository.lowercased(), !repository.contains(" ") else {
                        throw fail(value, "\(field).push", "\(repository) is not a repository to push to; give REGISTRY/REPO without a tag, e.g. registry.example.com:5000/team/train (the tag is the context's hash)")
                    }
                    push = repository
                case let other: throw fail(key, "\(field).\(other)", "unknown field; an image to build is {build: CONTEXT_FOLDER, dockerfile: Dockerfile, push: REGISTRY/REPO}")
                }
            }
            guard let context else { throw fail(node, field, "give the folder to build from: {build: .}") }
            spec.imageBuild = ClusterSpec.ImageBuild(context: context, dockerfile: dockerfile, push: push)
        } else if let (field, node) = imageFields.first, let node {
            spec.image = try image(node, field)
        }
        if let node = resources {
            spec.resources = try readResources(node)
        }
        if let node = fields["envs"] ?? fields["env"] {
            if fields["envs"] != nil && fields["env"] != nil { throw fail(fields["env"], "env", "the environment is already given by envs; keep one") }
            spec.envs = try environment(node, fields["envs"] != nil ? "envs" : "env")
        }
        if let node = fields["hosts"] {
            guard spec.provider == .ssh else { throw fail(node, "hosts", "only the ssh provider takes hosts; add provider: ssh, or remove hosts") }
            guard let sequence = node.sequence, !sequence.isEmpty else { throw fail(node, "hosts", "expected a list of user@host or user@host:port") }
            spec.hosts = try sequence.map { item in
                let text = try string(item, "hosts")
                guard SSHHost(text) != nil else { throw fail(item, "hosts", "\"\(text)\" is not user@host or user@host:port") }
                return text
            }
        } else if spec.provider == .ssh {
            throw ClusterError(.invalidSpec, "\(file): hosts: the ssh provider needs hosts (a list of user@host or user@host:port)")
        }
        if let node = fields["num_nodes"] {
            let count = try integer(node, "num_nodes")
            guard (1...64).contains(count) else { throw fail(node, "num_nodes", "\(count) is out of range; allowed: 1 to 64") }
            if spec.provider == .ssh && count != spec.hosts.count {
                throw fail(node, "num_nodes", "\(count) nodes but \(spec.hosts.count) hosts; give one host per node")
            }
            spec.numNodes = count
        } else if spec.provider == .ssh {
            spec.numNodes = spec.hosts.count
        }
        if let node = fields["identity_file"] { spec.identityFile = try string(node, "identity_file") }
        if let node = fields["accept_new_host_keys"] { spec.acceptNewHostKeys = try bool(node, "accept_new_host_keys") }
        if let node = fields["region"] { spec.region = try string(node, "region") }
        if let node = fields["ami"] { spec.ami = try string(node, "ami") }
        if let node = fields["ssh_user"] { spec.sshUser = try string(node, "ssh_user") }
        if let node = fields["ssh_cidr"] { spec.sshCIDR = try string(node, "ssh_cidr") }
        if let node = fields["ssh_proxy_command"] {
            let command = try string(node, "ssh_proxy_command")
            guard !command.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw fail(node, "ssh_proxy_command", "empty; give a command such as \"ssh -W %h:%p jump.example.com\"")
            }
            spec.sshProxyCommand = command
        }
        if let node = fields["autostop"] { spec.autostop = try autostop(node) }
        if let node = fields["setup"] { spec.setup = try script(node, "setup") }
        if let node = fields["workdir"] { spec.workdir = try string(node, "workdir") }
        if let node = fields["file_mounts"] {
            guard let mapping = node.mapping else { throw fail(node, "file_mounts", "expected a mapping of REMOTE_PATH: LOCAL_PATH") }
            for (key, value) in mapping {
                let remote = try string(key, "file_mounts")
                guard remote.hasPrefix("/") || remote.hasPrefix("~/") else {
                    throw fail(key, "file_mounts.\(remote)", "the path in the container must be absolute (/data) or start with ~/")
                }
                spec.fileMounts = (spec.fileMounts ?? [:]).merging([remote: try string(value, "file_mounts.\(remote)")]) { $1 }
            }
        }
        if let node = fields["artifacts"] {
            guard let sequence = node.sequence else { throw fail(node, "artifacts", "expected a list of paths in the workdir, e.g. [outputs, logs/train.log]") }
            spec.artifacts = try sequence.map { item in
                let path = try string(item, "artifacts")
                let parts = path.split(separator: "/")
                guard !path.hasPrefix("/"), !path.hasPrefix("~"), !parts.isEmpty, !parts.contains(".."), parts != ["."] else {
                    throw fail(item, "artifacts", "\(path) is not a path inside the workdir; give one relative to it, such as outputs")
                }
                return parts.filter { $0 != "." }.joined(separator: "/")
            }
            guard fields["workdir"] != nil else {
                throw fail(node, "artifacts", "artifacts are paths in the workdir, and the spec has no workdir; add one (workdir: .)")
            }
        }
        if fields["run"] != nil && fields["commands"] != nil {
            throw fail(fields["commands"], "commands", "the job is already given by run; keep one")
        }
        if let node = fields["run"] ?? fields["commands"] { spec.run = try script(node, fields["run"] != nil ? "run" : "commands") }
        if let node = fields["agent"] {
            if let mapping = node.mapping {
                var product: String?
                var package: String?
                for (key, value) in mapping {
                    switch try string(key, "agent") {
                    case "product": product = try string(value, "agent.product")
                    case "package": package = try string(value, "agent.package")
                    case let other: throw fail(key, "agent", "unknown field \"\(other)\"; the agent is a path, or {product: NAME, package: PATH}")
                    }
                }
                guard let product else { throw fail(node, "agent", "give the product to build: {product: NAME}") }
                spec.agentProduct = AgentProduct(product: product, package: package)
            } else {
                spec.agent = try string(node, "agent")
            }
        }
        return spec
    }

    private func readResources(_ node: Node) throws -> ClusterSpec.Resources {
        guard let mapping = node.mapping else { throw fail(node, "resources", "expected a mapping (cpus:, memory:, accelerators:, shm_size:, use_spot:)") }
        var resources = ClusterSpec.Resources()
        var seen: Set<String> = []
        for (key, value) in mapping {
            let name = try string(key, "resources")
            guard Self.resourceFields.contains(name) else {
                throw fail(key, "resources.\(name)", "unknown field; allowed: \(Self.resourceFields.joined(separator: ", "))")
            }
            guard seen.insert(name == "gpus" ? "accelerators" : name).inserted else {
                throw fail(key, "resources.\(name)", "given twice (accelerators and gpus are the same field)")
            }
            switch name {
            case "cpus": resources.cpus = try amount(value, "resources.cpus", unit: "CPUs")
            case "memory": resources.memoryGB = try amount(value, "resources.memory", unit: "GB")
            case "accelerators", "gpus": resources.accelerators = try accelerators(value, "resources.\(name)")
            case "shm_size":
                let text = try string(value, "resources.shm_size")
                guard text.range(of: #"^[0-9]+[bkmgBKMG]?$"#, options: .regularExpression) != nil else {
                    throw fail(value, "resources.shm_size", "\"\(text)\" is not a size; write it as Docker does, e.g. 512m or 2g")
                }
                resources.shmSize = text.lowercased()
            case "use_spot": resources.useSpot = try bool(value, "resources.use_spot")
            case "instance_type":
                let text = try string(value, "resources.instance_type")
                // Runhouse's spelling of what a node needs: "CPU:4+" or "A10G:1".
                if let match = text.wholeMatch(of: /([A-Za-z][A-Za-z0-9-]*):([0-9]+(?:\.[0-9]+)?)\+?/) {
                    let isCPU = match.1.uppercased() == "CPU"
                    guard seen.insert(isCPU ? "cpus" : "accelerators").inserted else {
                        throw fail(value, "resources.instance_type", "\"\(text)\" asks for \(isCPU ? "cpus" : "accelerators"), which are already given")
                    }
                    if isCPU {
                        resources.cpus = Double(match.2)
                    } else {
                        resources.accelerators = try accelerators(value, "resources.instance_type")
                    }
                } else {
                    resources.instanceType = text
                }
            case "disk_size":
                let size = try integer(value, "resources.disk_size")
                guard (8...16384).contains(size) else { throw fail(value, "resources.disk_size", "\(size) GB is out of range; allowed: 8 to 16384") }
                resources.diskSizeGB = size
            default: break  // image_id and cloud, read with the top-level fields
            }
        }
        return resources
    }

    /// `autostop:` as SkyPilot writes it: minutes (`30`), a duration (`90s`, `30m`, `2h`),
    /// `true` (5 minutes) or `false`, or `{idle_minutes: 30, down: true}`.
    func autostop(_ node: Node) throws -> ClusterSpec.Autostop? {
        let help = "give minutes (30), a duration (90s, 30m, 2h), true, false, or {idle_minutes: 30, down: true}"
        if let mapping = node.mapping {
            var idle: Int?
            var down = false
            for (key, value) in mapping {
                switch try string(key, "autostop") {
                case "idle_minutes": idle = try duration(value, "autostop.idle_minutes", help: help)
                case "down": down = try bool(value, "autostop.down")
                case let other: throw fail(key, "autostop.\(other)", "unknown field; allowed: idle_minutes, down")
                }
            }
            return ClusterSpec.Autostop(idleSeconds: idle ?? 300, down: down)
        }
        switch try string(node, "autostop").lowercased() {
        case "false", "no", "off": return nil
        case "true", "yes", "on": return ClusterSpec.Autostop(idleSeconds: 300)
        default: return ClusterSpec.Autostop(idleSeconds: try duration(node, "autostop", help: help))
        }
    }

    /// Shell commands: one (multi-line) string, or dstack's list of commands, one per line.
    func script(_ node: Node, _ field: String) throws -> String {
        let text: String
        if let sequence = node.sequence {
            text = try sequence.map { try string($0, field) }.joined(separator: "\n")
        } else {
            text = try string(node, field)
        }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw fail(node, field, "empty; give shell commands, or remove the field")
        }
        return text
    }

    /// Seconds from minutes (`30`) or a duration with its unit (`90s`, `30m`, `2h`).
    func duration(_ node: Node, _ field: String, help: String) throws -> Int {
        let text = try string(node, field).trimmingCharacters(in: .whitespaces).lowercased()
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        let (number, unit) = text.last.flatMap { units[$0] }.map { (text.dropLast(), $0) } ?? (Substring(text), 60)
        guard let value = Int(number), value > 0, value <= 366 * 86400 / unit else {
            throw fail(node, field, "\"\(text)\" is not a positive duration; \(help)")
        }
        return value * unit
    }

    // MARK: Values

    func string(_ node: Node, _ field: String) throws -> String {
        guard let scalar = node.scalar else { throw fail(node, field, "expected a single value") }
        return scalar.string
    }

    func integer(_ node: Node, _ field: String) throws -> Int {
        let text = try string(node, field)
        guard let value = Int(text) else { throw fail(node, field, "\"\(text)\" is not a whole number") }
        return value
    }

    func bool(_ node: Node, _ field: String) throws -> Bool {
        switch try string(node, field).lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        case let other: throw fail(node, field, "\"\(other)\" is not true or false")
        }
    }

    /// A positive number, or SkyPilot's "N+" (at least N, taken as N).
    func amount(_ node: Node, _ field: String, unit: String) throws -> Double {
        var text = try string(node, field)
        if text.hasSuffix("+") { text.removeLast() }
        guard let value = Double(text), value > 0, value.isFinite else {
            throw fail(node, field, "\"\(try string(node, field))\" is not a positive number of \(unit) (e.g. 2, 0.5 or 4+)")
        }
        return value
    }

    func accelerators(_ node: Node, _ field: String) throws -> ClusterSpec.Accelerators {
        let text = try string(node, field)
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let name = String(parts[0])
        let count = parts.count == 2 ? Int(parts[1]) : (parts.count == 1 ? 1 : nil)
        guard !name.isEmpty, parts.count <= 2, let count, count > 0 else {
            throw fail(node, field, "\"\(text)\" is not NAME:COUNT (e.g. A100:1)")
        }
        return ClusterSpec.Accelerators(name: name, count: count)
    }

    func image(_ node: Node, _ field: String) throws -> String {
        let text = try string(node, field)
        guard text.hasPrefix("docker:") else {
            throw fail(node, field, "\"\(text)\" must start with docker: (e.g. docker:ubuntu:22.04 or docker:registry.example.com/team/app:1.2)")
        }
        let reference = String(text.dropFirst("docker:".count))
        guard reference.range(of: #"^[a-z0-9][a-z0-9._/:@-]*$"#, options: [.regularExpression, .caseInsensitive]) != nil else {
            throw fail(node, field, "\"\(reference)\" is not an image reference (REGISTRY/IMAGE:TAG)")
        }
        return reference
    }

    func environment(_ node: Node, _ field: String) throws -> [String: String] {
        guard let mapping = node.mapping else { throw fail(node, field, "expected a mapping of NAME: value") }
        var result: [String: String] = [:]
        for (key, value) in mapping {
            let name = try string(key, field)
            guard name.range(of: #"^[A-Za-z_][A-Za-z0-9_]*$"#, options: .regularExpression) != nil else {
                throw fail(key, "\(field).\(name)", "not a valid variable name (letters, digits and _, not starting with a digit)")
            }
            result[name] = try string(value, "\(field).\(name)")
        }
        return result
    }
}

/// `user@host[:port]`, parsed.
struct SSHHost: Equatable, Sendable {
    var user: String
    var host: String
    var port: Int

    init?(_ text: String) {
        guard let at = text.firstIndex(of: "@") else { return nil }
        user = String(text[..<at])
        var rest = String(text[text.index(after: at)...])
        port = 22
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            guard let value = Int(rest[rest.index(after: colon)...]), (1...65535).contains(value) else { return nil }
            port = value
            rest = String(rest[..<colon])
        }
        host = rest.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        // Names only: nothing a shell, an ssh_config or a known_hosts line could read as more.
        guard user.range(of: #"^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$"#, options: .regularExpression) != nil,
            host.range(of: #"^[A-Za-z0-9._:-]{1,253}$"#, options: .regularExpression) != nil
        else { return nil }
    }
}
