import Crypto
import Synchronization
import Foundation
import YonderLocalServers
import YonderSSH

#if canImport(Glibc)
import Glibc
#endif

/// An image build made ready on this machine: the context's files (less `.dockerignore`'s),
/// their hash, the tag it gives the image, and the context as a tar file to upload.
struct PreparedImageBuild: Sendable {
    /// `yonder-build/NAME:HASH`, or `REGISTRY/REPO:HASH` when pushed.
    var tag: String
    /// When the image is built on node 0 and pushed: opened once it is in the registry, for
    /// the other nodes to pull it.
    var pushed: PushGate?
    /// The Dockerfile's path inside the context.
    var dockerfile: String
    /// The context as a tar file, on this machine.
    var archive: String
    /// How many files, and their bytes.
    var files: Int
    var bytes: Int64

    /// Reads the context of `build` for cluster `cluster`.
    static func prepare(_ build: ClusterSpec.ImageBuild, cluster: String) throws -> PreparedImageBuild {
        let root = URL(fileURLWithPath: build.context).standardizedFileURL
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw ClusterError(.invalidSpec, "cluster \(cluster): the build context \(root.path) is not a folder")
        }
        let dockerfile = build.dockerfile ?? "Dockerfile"
        guard FileManager.default.fileExists(atPath: root.appendingPathComponent(dockerfile).path) else {
            throw ClusterError(.invalidSpec, "cluster \(cluster): there is no \(dockerfile) in the build context \(root.path)")
        }
        let ignore = DockerIgnore((try? String(contentsOf: root.appendingPathComponent(".dockerignore"), encoding: .utf8)) ?? "")
        var paths: [String] = []
        var hash = SHA256()
        var bytes: Int64 = 0
        hash.update(data: Data("dockerfile \(dockerfile)\n".utf8))
        for path in try Self.files(in: root, ignore: ignore, keep: [dockerfile, ".dockerignore"]).sorted() {
            let url = root.appendingPathComponent(path)
            let data = try Data(contentsOf: url)
            let executable = FileManager.default.isExecutableFile(atPath: url.path)
            hash.update(data: Data("file \(path) \(executable ? 1 : 0) \(data.count)\n".utf8))
            hash.update(data: data)
            bytes += Int64(data.count)
            paths.append(path)
        }
        let digest = hash.finalize().prefix(8).hex
        let list = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-build-\(digest)-\(getpid()).list")
        let archive = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-build-\(digest)-\(getpid()).tar").path
        try Data(paths.map { $0 + "\0" }.joined().utf8).write(to: list)
        defer { try? FileManager.default.removeItem(at: list) }
        let (status, output) = try ChildProcess.runCapturing(
            "/usr/bin/env", ["tar", "-C", root.path, "--null", "--no-recursion", "-T", list.path, "-cf", archive])
        guard status == 0 else {
            throw ClusterError(.invalidSpec, "cluster \(cluster): cannot pack the build context \(root.path): \(output)")
        }
        let repository = build.push ?? "yonder-build/\(cluster.lowercased())"
        return PreparedImageBuild(
            tag: "\(repository):\(digest)", pushed: build.push == nil ? nil : PushGate(), dockerfile: dockerfile, archive: archive,
            files: paths.count, bytes: bytes)
    }

    /// The context's files, relative to `root`, less those `ignore` names (the `keep` ones are
    /// always sent, as Docker does).
    static func files(in root: URL, ignore: DockerIgnore, keep: Set<String>) throws -> [String] {
        var found: [String] = []
        func walk(_ relative: String) throws {
            let folder = relative.isEmpty ? root : root.appendingPathComponent(relative)
            for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
                let path = relative.isEmpty ? name : "\(relative)/\(name)"
                var isFolder: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path, isDirectory: &isFolder)
                if ignore.excludes(path) && !keep.contains(path) { continue }
                if isFolder.boolValue { try walk(path) } else { found.append(path) }
            }
        }
        try walk("")
        return found
    }
}

/// `.dockerignore` patterns: `*`, `?` and `**` globs on paths relative to the context, a
/// folder's pattern covering what is inside it, `!` to take a path back, later lines winning.
struct DockerIgnore {
    private var rules: [(pattern: String, exclude: Bool)] = []

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            var pattern = line.trimmingCharacters(in: .whitespaces)
            if pattern.isEmpty || pattern.hasPrefix("#") { continue }
            let exclude = !pattern.hasPrefix("!")
            if !exclude { pattern.removeFirst() }
            while pattern.hasPrefix("/") { pattern.removeFirst() }
            while pattern.hasSuffix("/") { pattern.removeLast() }
            if pattern.hasPrefix("./") { pattern.removeFirst(2) }
            if !pattern.isEmpty { rules.append((pattern, exclude)) }
        }
    }

    /// Whether `path` is left out of the context.
    func excludes(_ path: String) -> Bool {
        var excluded = false
        for rule in rules where Self.matches(rule.pattern, path) { excluded = rule.exclude }
        return excluded
    }

    /// Whether `pattern` names `path` or a folder above it.
    static func matches(_ pattern: String, _ path: String) -> Bool {
        let parts = path.split(separator: "/").map(String.init)
        for end in 1...max(1, parts.count) where glob(pattern, parts.prefix(end).joined(separator: "/")) {
            return true
        }
        return false
    }

    /// `fnmatch` with `FNM_PATHNAME`, where `**` also matches any number of folders.
    static func glob(_ pattern: String, _ path: String) -> Bool {
        if pattern.contains("**") {
            // `a/**/b`: try `**` as nothing, as one folder, and as several.
            let expanded = [pattern.replacingOccurrences(of: "**/", with: ""), pattern.replacingOccurrences(of: "**", with: "*")]
            if expanded.contains(where: { fnmatch($0, path, FNM_PATHNAME) == 0 }) { return true }
            let depth = path.split(separator: "/").count
            var deeper = pattern
            for _ in 0..<depth {
                deeper = deeper.replacingOccurrences(of: "**", with: "*/**")
                if fnmatch(deeper.replacingOccurrences(of: "**", with: "*"), path, FNM_PATHNAME) == 0 { return true }
            }
            return false
        }
        return fnmatch(pattern, path, FNM_PATHNAME) == 0
    }
}

extension NodeBootstrap {
    /// Builds the spec's image on the node from the uploaded context, unless the node already
    /// has an image of that tag (the same context): its output comes as progress, and a
    /// failure has its last lines.
    /// The image step of a build: on every node; or, with `push`, built and pushed by node 0
    /// while the others wait, then pulled by them.
    func ensureImage(built build: PreparedImageBuild) async throws {
        guard let gate = build.pushed else {
            return try await timed("image", build.tag) { try await ensureBuiltImage(build) }
        }
        guard index == 0 else {
            report(ClusterProgress(node: index, step: "image", detail: "waiting for node 0 to build and push \(build.tag)"))
            try await gate.wait()
            return try await timed("image", build.tag) { try await ensureImage(build.tag, credentials: credentials) }
        }
        do {
            try await timed("image", build.tag) {
                try await ensureBuiltImage(build)
                try await transfer(build.tag, push: true, credentials: credentials)
            }
            gate.open()
        } catch {
            gate.fail("node 0 could not build and push \(build.tag): \(error)")
            throw error
        }
    }

    func ensureBuiltImage(_ build: PreparedImageBuild) async throws {
        if try await run("docker image inspect --format '{{.Id}}' \(shellQuote(build.tag))").status == .exited(0) {
            report(ClusterProgress(node: index, step: "build", detail: "\(build.tag) is there already (the context is unchanged)"))
            return
        }
        let start = ContinuousClock.now
        let remote = ".yonder/builds/\(build.tag.split(separator: ":").last ?? "context")-\(index).tar"
        _ = try await run(NodeCommands.staleUploadsRemoval(in: ".yonder/builds", contexts: true))
        let sftp = try await session.sftp()
        do {
            report(ClusterProgress(node: index, step: "build", detail: "uploading the context (\(build.files) files, \(build.bytes / 1000) kB)"))
            try await sftp.makeDirectory(".yonder/builds", mode: 0o700)
            try await sftp.upload(from: build.archive, to: remote, mode: 0o600)
            await sftp.close()
        } catch {
            await sftp.close()
            throw error
        }
        report(ClusterProgress(node: index, step: "build", detail: "building \(build.tag)"))
        // --force-rm: a step that fails leaves no stopped container behind (the classic builder
        // keeps it otherwise, one more on the node at each failed build).
        // The build runs in the background while a watcher reads the command's standard input,
        // which this side never closes: when it ends (`up` cancelled or interrupted, this process
        // gone, the connection lost), the watcher interrupts the build, and Docker stops the step
        // and removes its container. Without it the build went on on the node after a Ctrl-C.
        let tar = shellQuote(remote)
        let command = [
            "exec 3<&0",
            "docker build --force-rm -t \(shellQuote(build.tag)) -f \(shellQuote(build.dockerfile)) - < \(tar) 2>&1 & build=$!",
            "(cat <&3 >/dev/null 2>&1; kill -INT $build) >/dev/null 2>&1 </dev/null & watch=$!",
            "wait $build; status=$?",
            "kill $watch 2>/dev/null; rm -f \(tar); exit $status",
        ].joined(separator: "; ")
        let process = try await session.execute(command)
        var tail: [String] = []
        var output = LineSplitter()
        for try await chunk in process.stdout {
            for line in output.lines(in: chunk) {
                tail = Array((tail + [line]).suffix(20))
                report(ClusterProgress(node: index, step: "build", detail: line))
            }
        }
        let status = try await process.exitStatus()
        guard status == .exited(0) else {
            if let rest = output.rest() { tail.append(rest) }
            throw ClusterError(.imageUnavailable, "\(node): building \(build.tag) failed (\(status)); its last lines:\n\(tail.joined(separator: "\n"))")
        }
        report(ClusterProgress(node: index, step: "build", detail: "built \(build.tag)", elapsed: ContinuousClock.now - start))
    }
}

/// Node 0's build and push, awaited by the other nodes of the `up`.
final class PushGate: Sendable {
    private let state = Mutex<(outcome: String??, waiters: [CheckedContinuation<Void, any Error>])>((nil, []))

    /// The image is in the registry.
    func open() { settle(.some(nil)) }

    /// Node 0 failed (or stopped before its image step): the waiters fail with `reason`.
    func fail(_ reason: String) { settle(.some(reason)) }

    private func settle(_ outcome: String??) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            guard state.outcome == nil else { return [] }
            state.outcome = outcome
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { resume(waiter, outcome) }
    }

    private func resume(_ waiter: CheckedContinuation<Void, any Error>, _ outcome: String??) {
        if case .some(.some(let reason)) = outcome {
            waiter.resume(throwing: ClusterError(.imageUnavailable, reason))
        } else {
            waiter.resume()
        }
    }

    func wait() async throws {
        try await withCheckedThrowingContinuation { continuation in
            let outcome = state.withLock { state -> String?? in
                if state.outcome == nil { state.waiters.append(continuation) }
                return state.outcome
            }
            if outcome != nil { resume(continuation, outcome) }
        }
    }
}
