import Crypto
import Foundation
import Yonder
import YonderLocalServers
import YonderSSH

#if canImport(Glibc)
import Glibc
#endif

/// How to reach one node over SSH.
struct NodeEndpoint: Sendable {
    var host: String
    var port: Int
    var user: String
    var identityFile: String?
    var pinnedHostKey: String?
    var acceptNewHostKeys: Bool
    var sshdProcessID: Int32?
    /// The command the SSH connection runs through (OpenSSH's `ProxyCommand`), if any.
    var proxyCommand: String?
    /// Made by this `up` (released again if it fails).
    var isNew = false
    /// For local nodes: the folder of the node's private sshd (`~/.yonder/local/NAME-I`).
    var localFolder: URL?
    /// For `aws` nodes: the EC2 instance.
    var instanceID: String?
    /// The address the other nodes reach this one at, when not `host`.
    var clusterAddress: String?

    init(host: String, port: Int, user: String, identityFile: String?, pinnedHostKey: String?, acceptNewHostKeys: Bool, sshdProcessID: Int32?) {
        self.host = host
        self.port = port
        self.user = user
        self.identityFile = identityFile
        self.pinnedHostKey = pinnedHostKey
        self.acceptNewHostKeys = acceptNewHostKeys
        self.sshdProcessID = sshdProcessID
    }

    init(_ node: ClusterState.NodeState) {
        self.init(host: node.host, port: node.port, user: node.user, identityFile: node.identityFile,
                  pinnedHostKey: node.pinnedHostKey, acceptNewHostKeys: node.acceptNewHostKeys, sshdProcessID: node.sshdProcessID)
        proxyCommand = node.proxyCommand
        instanceID = node.instanceID
        clusterAddress = node.clusterAddress
    }

    func connect() async throws -> SSHSession {
        var authentication: [SSHAuthentication] = []
        if let identityFile { authentication.append(.privateKey(path: identityFile)) }
        authentication.append(.agent)
        let hostKeys: HostKeyPolicy = pinnedHostKey.map { .pinned([$0]) } ?? .knownHosts(acceptNew: acceptNewHostKeys)
        return try await SSHSession.connect(SSHConfiguration(
            host: host, port: port, user: user, authentication: authentication, hostKeys: hostKeys, proxyCommand: proxyCommand))
    }
}

/// Where a cluster's nodes come from. A provider only provisions machines that run sshd and
/// Docker, and releases them; everything from SSH onwards (bootstrap, agents, tunnels, state)
/// is shared. A cloud provider (AWS) adds a type here and a case to `ClusterSpec.Provider`.
protocol Provider: Sendable {
    /// Makes or finds the nodes; `previous` is what the last `up` recorded, for reuse.
    /// Returns how to reach each node and what was newly made (to release if `up` fails).
    func provision(_ spec: ClusterSpec, previous: ClusterState?, progress: @escaping @Sendable (ClusterProgress) -> Void) async throws -> [NodeEndpoint]

    /// Releases a node made by ``provision(_:previous:progress:)``: after a failed `up` (for
    /// the nodes it made) and at `down` (for all), once their containers are gone.
    func release(_ node: NodeEndpoint) async

    /// After every node of a `down` was released: removes what the provider made for the
    /// cluster as a whole, and throws, naming it, if anything of the cluster is left.
    func finishDown(_ spec: ClusterSpec, progress: @escaping @Sendable (ClusterProgress) -> Void) async throws

    /// After a failed `up`, once its new nodes were released: removes what `provision` made
    /// for the cluster as a whole, and nothing it found already there.
    func undoProvision(progress: @escaping @Sendable (ClusterProgress) -> Void) async
}

extension Provider {
    func finishDown(_ spec: ClusterSpec, progress: @escaping @Sendable (ClusterProgress) -> Void) async throws {}
    func undoProvision(progress: @escaping @Sendable (ClusterProgress) -> Void) async {}
}

enum Providers {
    static func provider(for spec: ClusterSpec, environment: [String: String] = ProcessInfo.processInfo.environment) -> any Provider {
        switch spec.provider {
        case .local: LocalProvider()
        case .ssh: SSHHostsProvider()
        case .aws: AWSProvider(spec: spec, environment: environment)
        }
    }
}

/// Existing machines, given as `user@host[:port]` in the spec.
struct SSHHostsProvider: Provider {
    func provision(_ spec: ClusterSpec, previous: ClusterState?, progress: @escaping @Sendable (ClusterProgress) -> Void) async throws -> [NodeEndpoint] {
        try spec.hosts.map { text in
            guard let host = SSHHost(text) else {
                throw ClusterError(.invalidSpec, "cluster \(spec.name): \"\(text)\" is not user@host or user@host:port")
            }
            var endpoint = NodeEndpoint(host: host.host, port: host.port, user: host.user, identityFile: spec.identityFile,
                                        pinnedHostKey: nil, acceptNewHostKeys: spec.acceptNewHostKeys, sshdProcessID: nil)
            endpoint.proxyCommand = spec.sshProxyCommand
            return endpoint
        }
    }

    func release(_ node: NodeEndpoint) async {}  // the machines are the user's
}

/// This machine: a private sshd on 127.0.0.1 per node, with a host key and a client key of
/// Yonder's own under `~/.yonder/local`. A node whose sshd still runs is reused.
struct LocalProvider: Provider {
    func provision(_ spec: ClusterSpec, previous: ClusterState?, progress: @escaping @Sendable (ClusterProgress) -> Void) async throws -> [NodeEndpoint] {
        let (hostKey, clientKey, authorized, hostPublicKey) = try Self.keys()
        var endpoints: [NodeEndpoint] = []
        do {
            for index in 0..<spec.numNodes {
                if let old = previous?.nodes.indices.contains(index) == true ? previous?.nodes[index] : nil,
                    let pid = old.sshdProcessID, LocalSSHServer.isRunning(processID: pid, folder: Self.folder(cluster: spec.name, node: index)),
                    LocalSSHServer.canConnect(port: old.port)
                {
                    var endpoint = NodeEndpoint(old)
                    endpoint.localFolder = Self.folder(cluster: spec.name, node: index)
                    endpoints.append(endpoint)
                    continue
                }
                let start = ContinuousClock.now
                let server = try LocalSSHServer(
                    folder: Self.folder(cluster: spec.name, node: index), hostKey: hostKey, authorizedKeys: authorized)
                // It outlives this process; `release` stops it by pid.
                server.detach()
                progress(ClusterProgress(node: index, step: "sshd", detail: "private sshd on 127.0.0.1:\(server.port)", elapsed: ContinuousClock.now - start))
                var endpoint = NodeEndpoint(
                    host: server.host, port: server.port, user: server.user, identityFile: clientKey,
                    pinnedHostKey: hostPublicKey, acceptNewHostKeys: false, sshdProcessID: server.processID)
                endpoint.isNew = true
                endpoint.localFolder = server.folder
                endpoints.append(endpoint)
            }
        } catch {
            for endpoint in endpoints where endpoint.isNew { await release(endpoint) }
            throw error
        }
        return endpoints
    }

    /// Stops the node's sshd, when the recorded pid is verified to be it, and removes its folder.
    func release(_ node: NodeEndpoint) async {
        guard let folder = node.localFolder else { return }
        if let pid = node.sshdProcessID, !LocalSSHServer.stop(processID: pid, folder: folder) { return }
        try? FileManager.default.removeItem(at: folder)
    }

    /// Yonder's keys for local nodes, made on first use: the host key, the client key, the
    /// authorized_keys file, and the host public key line.
    static func keys() throws -> (hostKey: String, clientKey: String, authorized: String, hostPublicKey: String) {
        guard LocalSSHServer.toolsInstalled else {
            throw ClusterError(.dockerUnavailable, "the local provider needs OpenSSH's sshd and ssh-keygen; install openssh-server")
        }
        let folder = ClusterState.home.appendingPathComponent("local")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let hostKey = folder.appendingPathComponent("host_ed25519").path
        let clientKey = folder.appendingPathComponent("id_ed25519").path
        let authorized = folder.appendingPathComponent("authorized_keys").path
        for key in [hostKey, clientKey] where !FileManager.default.fileExists(atPath: key) {
            try LocalSSHServer.generateKey(at: key)
        }
        if !FileManager.default.fileExists(atPath: authorized) {
            try FileManager.default.copyItem(atPath: clientKey + ".pub", toPath: authorized)
        }
        let hostPublicKey = try String(contentsOfFile: hostKey + ".pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return (hostKey, clientKey, authorized, hostPublicKey)
    }

    /// A private sshd in `folder` for one task (`down` of a node whose sshd died), stopped with
    /// the returned server, and how to reach it.
    static func temporaryServer(folder: URL) throws -> (LocalSSHServer, NodeEndpoint) {
        let (hostKey, clientKey, authorized, hostPublicKey) = try keys()
        let server = try LocalSSHServer(folder: folder, hostKey: hostKey, authorizedKeys: authorized)
        var endpoint = NodeEndpoint(
            host: server.host, port: server.port, user: server.user, identityFile: clientKey,
            pinnedHostKey: hostPublicKey, acceptNewHostKeys: false, sshdProcessID: server.processID)
        endpoint.localFolder = folder
        return (server, endpoint)
    }

    /// The folder of node `node`'s private sshd: `~/.yonder/local/NAME-I`.
    static func folder(cluster: String, node: Int) -> URL {
        ClusterState.home.appendingPathComponent("local").appendingPathComponent("\(cluster)-\(node)")
    }
}

/// The agent executable to install: found, checked to be static, and named by its content.
enum AgentExecutable {
    static func locate(spec: ClusterSpec, environment: [String: String]) throws -> String {
        let candidates: [(String, String)] = [
            spec.agent.map { ("the spec's agent field", $0) },
            environment["YONDER_AGENT"].map { ("YONDER_AGENT", $0) },
        ].compactMap { $0 }
        let (origin, path) = candidates.first ?? ("the default", LocalAgent.besideThisProgram("yonder-agent"))
        let expanded = HostKeyVerifier.expandTilde(path)
        guard FileManager.default.isExecutableFile(atPath: expanded) else {
            throw ClusterError(.agentFailed, "the agent executable \(expanded) (from \(origin)) does not exist or is not executable; build it with `swift build -c release --product yonder-agent -Xswiftc -static-executable` and set YONDER_AGENT or the spec's agent field to its path")
        }
        guard try isStatic(expanded) else {
            throw ClusterError(.agentFailed, "the agent executable \(expanded) (from \(origin)) is dynamically linked and would not run in an arbitrary image; build it with -Xswiftc -static-executable")
        }
        return expanded
    }

    /// Whether an ELF executable has no program interpreter (is statically linked).
    static func isStatic(_ path: String) throws -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        guard let header = try handle.read(upToCount: 64), header.count == 64, header.prefix(4) == Data([0x7f, 0x45, 0x4c, 0x46]) else {
            return false
        }
        func integer(_ offset: Int, _ size: Int) -> Int {
            (0..<size).reduce(0) { $0 | Int(header[offset + $1]) << (8 * $1) }
        }
        let tableOffset = integer(0x20, 8), entrySize = integer(0x36, 2), count = integer(0x38, 2)
        try handle.seek(toOffset: UInt64(tableOffset))
        guard let table = try handle.read(upToCount: entrySize * count) else { return false }
        for entry in 0..<count where table.count >= (entry + 1) * entrySize {
            let type = (0..<4).reduce(0) { $0 | Int(table[entry * entrySize + $1]) << (8 * $1) }
            if type == 3 { return false }  // PT_INTERP
        }
        return true
    }

    /// A content hash of the executable (SHA-256, its first 16 hex digits): same bytes, same
    /// build.
    /// Remembered in `~/.yonder/agent-builds.json` by path, size, modification time and inode,
    /// so that a warm `up` does not read the whole executable again.
    static func build(of path: String, cacheFile: URL = ClusterState.home.appendingPathComponent("agent-builds.json")) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return try hash(of: path) }
        let key = "\(path)|sha256|\(info.st_size)|\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)|\(info.st_ino)"
        var cache = (try? JSONDecoder().decode([String: String].self, from: Data(contentsOf: cacheFile))) ?? [:]
        if let known = cache[key] { return known }
        let build = try hash(of: path)
        // Keep one entry per path: the newest.
        cache = cache.filter { !$0.key.hasPrefix(path + "|") }
        cache[key] = build
        if let data = try? JSONEncoder().encode(cache) {
            try? FileManager.default.createDirectory(at: cacheFile.deletingLastPathComponent(), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            try? data.write(to: cacheFile, options: .atomic)
        }
        return build
    }

    static func hash(of path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ClusterError(.agentFailed, "cannot read the agent executable \(path)")
        }
        defer { try? handle.close() }
        var hash = SHA256()
        while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty {
            hash.update(data: data)
        }
        return hash.finalize().prefix(8).hex
    }
}

extension Sequence<UInt8> {
    /// The bytes in lowercase hex, two digits each (a digest's, or the first bytes of one).
    var hex: String { map { String($0, radix: 16).leftPadded(to: 2) }.joined() }
}

extension String {
    /// The string with zeros in front, to `width` characters.
    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
