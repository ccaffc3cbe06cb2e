import Crypto
import Foundation
import Yonder
import YonderLocalServers

/// Keeps folders of this machine in sync with folders in a node's container (the spec's
/// `workdir` and `file_mounts`), through the agent's file built-ins: only files whose content
/// changed are sent, and files deleted here are deleted there.
///
/// What the container holds is remembered in a manifest beside the agent
/// (`/yonder/run/sync-HASH.json`: path, content hash, executable bit), written after each sync;
/// a new container has none, and gets everything.
struct FolderSync {
    /// One file of a tree: its content hash and whether it is executable.
    struct Entry: Codable, Equatable {
        var hash: String
        var executable: Bool
    }

    /// What a sync did.
    struct Outcome: Sendable {
        var sent = 0
        var sentBytes = 0
        var deleted = 0
        var unchanged = 0
    }

    /// The files of `local` (a folder, or one file), by path relative to it, less what
    /// `.gitignore` and `.yonderignore` in the folder name, `.git`, and the paths `leaveOut`.
    static func scan(_ local: String, leaveOut: [String] = []) throws -> [String: (entry: Entry, url: URL)] {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: local, isDirectory: &isFolder) else {
            throw ClusterError(.invalidSpec, "\(local) does not exist on this machine")
        }
        let root = URL(fileURLWithPath: local)
        if !isFolder.boolValue { return ["": (try entry(root), root)] }
        let ignore = DockerIgnore(gitStyle: [".gitignore", ".yonderignore"].compactMap {
            try? String(contentsOf: root.appendingPathComponent($0), encoding: .utf8)
        }.joined(separator: "\n") + "\n.git\n" + leaveOut.map { "/\($0)\n" }.joined())
        var tree: [String: (entry: Entry, url: URL)] = [:]
        for path in try PreparedImageBuild.files(in: root, ignore: ignore, keep: []) {
            let url = root.appendingPathComponent(path)
            tree[path] = (try entry(url), url)
        }
        return tree
    }

    static func entry(_ url: URL) throws -> Entry {
        let data = try Data(contentsOf: url)
        let hash = SHA256.hash(data: data).hex
        return Entry(hash: hash, executable: FileManager.default.isExecutableFile(atPath: url.path))
    }

    /// Makes `remote` in the agent of `connection` hold what `local` holds; `manifest` is
    /// where the agent keeps what it holds.
    static func sync(_ local: String, to remote: String, manifest: String, leaveOut: [String] = [], over connection: Connection) async throws -> Outcome {
        let tree = try scan(local, leaveOut: leaveOut)
        let known: [String: Entry] = (try? await connection.getFile(manifest)).flatMap {
            try? JSONDecoder().decode([String: Entry].self, from: Data($0))
        } ?? [:]
        var outcome = Outcome()
        func remotePath(_ path: String) -> String { path.isEmpty ? remote : "\(remote)/\(path)" }
        for (path, (entry, url)) in tree.sorted(by: { $0.key < $1.key }) {
            if known[path] == entry {
                outcome.unchanged += 1
                continue
            }
            outcome.sentBytes += try await connection.putFile(from: url.path, to: remotePath(path), mode: entry.executable ? 0o755 : 0o644)
            outcome.sent += 1
        }
        let gone = known.keys.filter { tree[$0] == nil }.sorted()
        for batch in stride(from: 0, to: gone.count, by: 200).map({ Array(gone[$0..<min($0 + 200, gone.count)]) }) {
            let removed = try await connection.exec(["rm", "-f", "--"] + batch.map(remotePath)).collect()
            guard removed.status.exitCode == 0 else {
                throw ClusterError(.taskFailed, "cannot delete \(batch.count) file(s) under \(remote): \(removed.errorText)")
            }
            outcome.deleted += batch.count
        }
        let record = try JSONEncoder().encode(tree.mapValues(\.entry))
        _ = try await connection.putFile([UInt8](record), to: manifest)
        return outcome
    }
}

extension Cluster {
    /// Where the spec's `workdir` goes in a node's container (or, with no image, in the
    /// agent's folder).
    func workdirPath(node: Int) -> String {
        state.nodes[node].isOnHost ? "workdir" : "/yonder/workdir"
    }

    /// Brings every node's `workdir` and `file_mounts` up to date with this machine, all
    /// nodes at once, saying per node what moved.
    public func syncFiles(progress: @escaping @Sendable (ClusterProgress) -> Void = { _ in }) async throws {
        let spec = state.spec
        var pairs: [(local: String, remote: String?)] = spec.workdir.map { [($0, nil)] } ?? []
        pairs += (spec.fileMounts ?? [:]).sorted { $0.key < $1.key }.map { ($0.value, $0.key) }
        guard !pairs.isEmpty else { return }
        let mounts = pairs
        try await withThrowingTaskGroup(of: Void.self) { group in
            for node in 0..<nodeCount {
                group.addTask {
                    let connection = try await self.connection(node: node)
                    let manifests = self.state.nodes[node].isOnHost ? "" : "/yonder/run/"
                    for (local, remote) in mounts {
                        let start = ContinuousClock.now
                        var target = remote ?? self.workdirPath(node: node)
                        if target.hasPrefix("~/") { target = try await Self.home(of: connection) + target.dropFirst(1) }
                        let name = SHA256.hash(data: Data(target.utf8)).prefix(6).hex
                        let outcome = try await FolderSync.sync(
                            local, to: target, manifest: "\(manifests)sync-\(name).json",
                            leaveOut: remote == nil ? spec.artifacts ?? [] : [], over: connection)
                        progress(ClusterProgress(
                            node: node, step: remote == nil ? "workdir" : "mount",
                            detail: "\(local) → \(target): sent \(outcome.sent) file(s) (\(outcome.sentBytes) bytes), deleted \(outcome.deleted), unchanged \(outcome.unchanged)",
                            elapsed: ContinuousClock.now - start))
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// The container user's home folder.
    static func home(of connection: Connection) async throws -> String {
        try await connection.exec(["/bin/sh", "-c", "printf %s \"$HOME\""]).collect().outputText
    }
}

extension DockerIgnore {
    /// `.gitignore` patterns, read as Docker's: a pattern without a slash but at its end
    /// names a file or folder at any depth.
    init(gitStyle text: String) {
        let lines = text.split(separator: "\n").map { line -> String in
            var pattern = line.trimmingCharacters(in: .whitespaces)
            let negated = pattern.hasPrefix("!")
            if negated { pattern.removeFirst() }
            let inner = pattern.hasSuffix("/") ? String(pattern.dropLast()) : pattern
            if !pattern.isEmpty, !pattern.hasPrefix("#"), !inner.contains("/") { pattern = "**/" + pattern }
            return (negated ? "!" : "") + pattern
        }
        self.init(lines.joined(separator: "\n"))
    }
}
