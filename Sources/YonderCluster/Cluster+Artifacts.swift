import Crypto
import Foundation
import Yonder

/// The spec's `artifacts` (dstack's): paths in the workdir copied back after a run.
extension Cluster {
    /// Copies each path of the spec's `artifacts` from every node's workdir to the same path
    /// in the local workdir (node N's to `PATH/node-N` when the cluster has several nodes).
    /// Only files whose content differs from the local copy move; a file is written to a
    /// temporary name and renamed, so an interrupted copy leaves the old file whole. Files
    /// deleted in the container are kept here. Says per node and path what moved.
    public func fetchArtifacts(progress: @escaping @Sendable (ClusterProgress) -> Void = { _ in }) async throws {
        guard let artifacts = state.spec.artifacts, !artifacts.isEmpty, let workdir = state.spec.workdir else { return }
        let several = nodeCount > 1
        try await withThrowingTaskGroup(of: Void.self) { group in
            for node in 0..<nodeCount {
                group.addTask {
                    let connection = try await self.connection(node: node)
                    for path in artifacts {
                        let start = ContinuousClock.now
                        let remote = "\(self.workdirPath(node: node))/\(path)"
                        var local = URL(fileURLWithPath: workdir).appendingPathComponent(path)
                        if several { local = local.appendingPathComponent("node-\(node)") }
                        guard let files = try await connection.listFiles(remote) else {
                            progress(ClusterProgress(node: node, step: "artifacts", detail: "\(path): nothing there in the container"))
                            continue
                        }
                        var fetched = 0, bytes = 0, unchanged = 0
                        for file in files {
                            // A single file listed as itself has an empty path.
                            let target = file.path.isEmpty ? (several ? local.appendingPathComponent((path as NSString).lastPathComponent) : local) : local.appendingPathComponent(file.path)
                            if let data = FileManager.default.contents(atPath: target.path), SHA256.hash(data: data).hex == file.sha256 {
                                unchanged += 1
                                continue
                            }
                            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                            let partial = target.path + ".yonder-part"
                            bytes += try await connection.getFile(file.path.isEmpty ? remote : "\(remote)/\(file.path)", to: partial)
                            if file.executable { chmod(partial, 0o755) }
                            guard rename(partial, target.path) == 0 else {
                                let reason = String(cString: strerror(errno))
                                unlink(partial)
                                throw ClusterError(.stateFailed, "cannot write the artifact \(target.path): \(reason)")
                            }
                            fetched += 1
                        }
                        progress(ClusterProgress(
                            node: node, step: "artifacts",
                            detail: "\(remote) → \(local.path): fetched \(fetched) file(s) (\(bytes) bytes), unchanged \(unchanged)",
                            elapsed: ContinuousClock.now - start))
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
