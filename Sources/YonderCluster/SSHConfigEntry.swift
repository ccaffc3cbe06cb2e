import Foundation
import YonderLocalServers
import YonderSSH

/// What makes plain OpenSSH (`ssh yonder-NAME`, and editors that use it) land in a cluster's
/// container rather than on the node.
///
/// Each node gets a key of its own (`~/.yonder/enter/NAME-I`) whose line in the node's
/// authorized_keys carries a forced command: a small script (`~/.yonder/enter` on the node)
/// that runs the client's command, or a shell, in the container with `docker exec`, with a
/// terminal when the client asked for one. The config block names that key and nothing else,
/// so `ssh yonder-NAME` can only ever reach the container. `down` removes all of it.
enum SSHConfigEntry {
    /// The forced command's script, installed on each node.
    static let enterScript = """
        #!/bin/sh
        # Written by `yonder ssh-config`. sshd runs this for the keys that `ssh yonder-NAME`
        # uses: the client's command, or a shell, inside the container named by $1 (or, for
        # an agent without a container, "-", on the node itself).
        container="$1"
        if [ "$container" = - ]; then
          if [ -n "$SSH_ORIGINAL_COMMAND" ]; then exec sh -c "$SSH_ORIGINAL_COMMAND"; fi
          exec "${SHELL:-/bin/sh}" -l
        fi
        flags=-i
        fit=
        if [ -t 0 ]; then
          flags=-it
          # docker sizes an exec's terminal only once it runs: set the size first.
          size=$(stty size 2>/dev/null)
          [ -n "$size" ] && fit="stty rows ${size% *} cols ${size#* } 2>/dev/null; "
        fi
        if [ -n "$SSH_ORIGINAL_COMMAND" ]; then
          exec docker exec $flags "$container" sh -c "$fit"'exec sh -c "$1"' sh "$SSH_ORIGINAL_COMMAND"
        fi
        exec docker exec $flags "$container" sh -c "$fit"'if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi'

        """

    static var keyFolder: URL { ClusterState.home.appendingPathComponent("enter") }

    static func keyPath(cluster: String, node: Int) -> String {
        keyFolder.appendingPathComponent("\(cluster)-\(node)").path
    }

    static func knownHostsPath(cluster: String) -> String {
        ClusterState.home.appendingPathComponent("clusters/\(cluster).known_hosts").path
    }

    /// The comment that tags a node's authorized_keys line.
    static func tag(cluster: String, node: Int) -> String { "yonder-enter:\(cluster)-\(node)" }

    /// The authorized_keys file the node's sshd reads, as a path the node's shell understands
    /// (relative paths are from the user's home).
    static func authorizedKeys(for provider: ClusterSpec.Provider) -> String {
        switch provider {
        case .local: ClusterState.home.appendingPathComponent("local/authorized_keys").path
        case .ssh, .aws: ".ssh/authorized_keys"
        }
    }

    /// The shell command that removes the cluster's lines from the node's authorized_keys.
    static func removalCommand(cluster: String, provider: ClusterSpec.Provider) -> String {
        let file = shellQuote(authorizedKeys(for: provider))
        return "if [ -f \(file) ]; then grep -v ' yonder-enter:\(cluster)-[0-9]*$' \(file) > \(file).yonder-tmp; mv \(file).yonder-tmp \(file); fi"
    }

    /// Makes the node's key, installs the script and the key's forced-command line on the node.
    static func install(cluster: String, provider: ClusterSpec.Provider, node index: Int, _ node: ClusterState.NodeState, session: SSHSession) async throws {
        let key = keyPath(cluster: cluster, node: index)
        try FileManager.default.createDirectory(at: keyFolder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if !FileManager.default.fileExists(atPath: key) {
            try LocalSSHServer.generateKey(at: key)
        }
        let publicKey = keyBody(try String(contentsOfFile: key + ".pub", encoding: .utf8))
        let target = node.isOnHost ? "-" : node.container
        let line = "command=\"sh .yonder/enter \(target)\",no-agent-forwarding,no-X11-forwarding \(publicKey) \(tag(cluster: cluster, node: index))"
        let file = shellQuote(authorizedKeys(for: provider))
        let command = """
            umask 077 && mkdir -p .yonder "$(dirname \(file))" && cat > .yonder/enter.tmp && chmod 755 .yonder/enter.tmp \
            && mv .yonder/enter.tmp .yonder/enter && touch \(file) \
            && { grep -v ' \(tag(cluster: cluster, node: index))$' \(file); printf '%s\\n' \(shellQuote(line)); } > \(file).yonder-tmp \
            && mv \(file).yonder-tmp \(file)
            """
        let result = try await session.run(command, input: Array(enterScript.utf8))
        guard result.status == .exited(0) else {
            throw ClusterError(.agentFailed, "cannot set up node \(index) of \(cluster) for plain ssh: \(result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// The OpenSSH config block for the cluster's nodes: `yonder-NAME` is node 0, and
    /// `yonder-NAME-I` each node I.
    static func block(cluster: String, state: ClusterState) -> String {
        var lines = [SSHConfigFile.begin(cluster) + " written by `yonder ssh-config \(cluster)`; `yonder down \(cluster)` removes it"]
        for (index, node) in state.nodes.enumerated() {
            lines.append(index == 0 ? "Host yonder-\(cluster) yonder-\(cluster)-0" : "Host yonder-\(cluster)-\(index)")
            lines.append("    HostName \(node.host)")
            lines.append("    Port \(node.port)")
            lines.append("    User \(node.user)")
            lines.append("    IdentityFile \(quoted(keyPath(cluster: cluster, node: index)))")
            lines.append("    IdentitiesOnly yes")
            if node.pinnedHostKey != nil {
                lines.append("    UserKnownHostsFile \(quoted(knownHostsPath(cluster: cluster)))")
                lines.append("    StrictHostKeyChecking yes")
            } else if node.acceptNewHostKeys {
                lines.append("    StrictHostKeyChecking accept-new")
            }
        }
        // Whatever follows in the file applies to every host again.
        lines.append("Match all")
        lines.append(SSHConfigFile.end(cluster))
        return lines.joined(separator: "\n") + "\n"
    }

    /// Once every node is set up: records the pinned host keys and returns the block.
    static func finish(_ state: ClusterState) throws -> String {
        let knownHosts = knownHosts(state)
        if !knownHosts.isEmpty {
            try replaceFile(atPath: knownHostsPath(cluster: state.spec.name), with: Data(knownHosts.utf8), mode: 0o600)
        }
        return block(cluster: state.spec.name, state: state)
    }

    /// `[host]:port key` lines for the nodes whose host key Yonder pinned.
    static func knownHosts(_ state: ClusterState) -> String {
        state.nodes.compactMap { node in
            node.pinnedHostKey.map { "[\(node.host)]:\(node.port) \(keyBody($0))\n" }
        }.joined()
    }

    /// `TYPE BASE64` of a public key line, without its comment.
    private static func keyBody(_ line: String) -> String {
        line.split(separator: " ").prefix(2).joined(separator: " ")
    }

    private static func quoted(_ path: String) -> String {
        path.contains(" ") ? "\"\(path)\"" : path
    }
}

/// Editing an OpenSSH config file: Yonder's blocks sit between marker lines, one block per
/// cluster, so that writing again replaces the block and `down` takes it out.
public enum SSHConfigFile {
    /// `~/.ssh/config`, with `~` from `HOME` as OpenSSH reads it.
    public static var defaultPath: String { HostKeyVerifier.expandTilde("~/.ssh/config") }

    static func begin(_ cluster: String) -> String { "# >>> yonder \(cluster) >>>" }
    static func end(_ cluster: String) -> String { "# <<< yonder \(cluster) <<<" }

    /// Puts `block` (from ``Cluster/sshConfig(_:)``) in the file at `path`: in place of the
    /// cluster's older block, else at the top, where OpenSSH (first value wins) reads it
    /// before any `Host *` of the user's. Makes the file (0600) and its folder (0700) if needed.
    public static func install(_ block: String, cluster: String, at path: String = defaultPath) throws {
        let old = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let (before, after, found) = split(old, cluster: cluster)
        try write(found ? before + block + after : block + (old.isEmpty ? "" : "\n" + old), to: path)
    }

    /// Whether the file at `path` holds a block for the cluster.
    public static func contains(cluster: String, at path: String = defaultPath) -> Bool {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return false }
        return split(text, cluster: cluster).2
    }

    /// Takes the cluster's block out of the file at `path`; false when there was none.
    @discardableResult
    public static func remove(cluster: String, from path: String = defaultPath) throws -> Bool {
        guard let old = try? String(contentsOfFile: path, encoding: .utf8) else { return false }
        let (before, after, found) = split(old, cluster: cluster)
        guard found else { return false }
        // Drop the blank line that separated the block from what followed.
        try write(before + (before.isEmpty && after.hasPrefix("\n") ? String(after.dropFirst()) : after), to: path)
        return true
    }

    /// The text before the cluster's block and after it, and whether there was one.
    private static func split(_ text: String, cluster: String) -> (String, String, Bool) {
        var lines = text.components(separatedBy: "\n")
        guard let start = lines.firstIndex(where: { $0.hasPrefix(begin(cluster)) }),
            let stop = lines[start...].firstIndex(where: { $0.hasPrefix(end(cluster)) })
        else { return (text, "", false) }
        let after = lines[(stop + 1)...].joined(separator: "\n")
        lines.removeSubrange(start...)
        let before = lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n"
        return (before, after, true)
    }

    private static func write(_ text: String, to path: String) throws {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        if !FileManager.default.fileExists(atPath: folder.path) {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let mode = (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? 0o600
        try replaceFile(atPath: path, with: Data(text.utf8), mode: mode)
    }
}

extension Cluster {
    /// Sets up every node of the recorded cluster `name` for plain OpenSSH (see
    /// ``SSHConfigFile``) and returns the config block: `ssh yonder-NAME` then opens a shell
    /// in node 0's container, `ssh yonder-NAME-1 CMD` runs CMD in node 1's.
    public static func sshConfig(_ name: String) async throws -> String {
        let state = try ClusterState.load(name)
        for (index, node) in state.nodes.enumerated() {
            let session = try await NodeEndpoint(node).connect()
            do {
                try await SSHConfigEntry.install(cluster: name, provider: state.spec.provider, node: index, node, session: session)
            } catch {
                await session.close()
                throw error
            }
            await session.close()
        }
        return try SSHConfigEntry.finish(state)
    }

    /// The same for this cluster, over the SSH sessions it already has open.
    public func sshConfig() async throws -> String {
        for (index, node) in state.nodes.enumerated() {
            try await SSHConfigEntry.install(cluster: name, provider: state.spec.provider, node: index, node, session: session(node: index))
        }
        return try SSHConfigEntry.finish(state)
    }
}
