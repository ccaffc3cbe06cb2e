/// The shell commands that reach a node's agent, in a container or (a spec without an image)
/// running on the node itself with its files in `~/.yonder/run/NAME`: `agent.json` (port and
/// token, written by the agent at each start), pid, build and `agent.log` (its output and log, as `docker logs` holds them for a container).
enum NodeCommands {
    /// The agent's folder on the node, relative to the SSH user's home.
    static func hostFolder(_ name: String) -> String { ".yonder/run/\(name)" }

    /// Removes the container, or stops the agent's process and removes its folder. The
    /// recorded pid is signalled only when that process's command line names the folder's
    /// endpoint file (a pid reused by another program is left alone).
    static func removal(_ name: String, onHost: Bool) -> String {
        let watcher = AutostopWatcher.removal(name)
        guard onHost else { return "\(watcher)\ndocker rm -f \(shellQuote(name))" }
        return """
            \(watcher)
            \(folderVariable(name)); if [ -f "$f/pid" ]; then pid=$(cat "$f/pid"); \
            if tr '\\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "/$f/\(AgentEndpoint.hostFileName) "; then kill "$pid" 2>/dev/null; fi; fi; rm -rf "$f"
            """
    }

    /// Removes what uploads to `folder` left behind when their connection was lost: SFTP's
    /// temporary files (`.NAME.yonder-N.tmp`) and, with `contexts`, build contexts (`*.tar`)
    /// whose build never started, once an hour has passed since anything was written to them.
    /// An upload in progress writes all the time, and a build opens its context at once.
    static func staleUploadsRemoval(in folder: String, contexts: Bool = false) -> String {
        let names = contexts ? "\\( -name '.*.yonder-*.tmp' -o -name '*.tar' \\)" : "-name '.*.yonder-*.tmp'"
        return "find \(shellQuote(folder)) -maxdepth 1 -type f \(names) -mmin +\(staleUploadMinutes) -delete 2>/dev/null; true"
    }

    /// Minutes after which an upload's leftover is removed by the next upload to its folder.
    static let staleUploadMinutes = 60

    /// `f=FOLDER`, the agent's folder quoted once: every command then says "$f".
    static func folderVariable(_ name: String) -> String {
        "f=\(shellQuote(hostFolder(name)))"
    }

    /// Prints the agent's endpoint file (port, token, instance) on a line of its own that
    /// starts with `AgentEndpoint.marker`; an empty line after the marker when there is none.
    static func endpoint(_ name: String, onHost: Bool) -> String {
        let read = onHost
            ? "\(folderVariable(name)); cat \"$f/\(AgentEndpoint.hostFileName)\" 2>/dev/null"
            : "docker cp \(shellQuote(name)):\(AgentEndpoint.containerFile) - 2>/dev/null | tar -xO 2>/dev/null"
        return "printf '\\n\(AgentEndpoint.marker)'; \(read); echo"
    }

    /// Prints `yonder-state STATE` (as `state` does) and the endpoint line: what a connect needs.
    static func discovery(_ name: String, onHost: Bool) -> String {
        """
        printf '\\nyonder-state %s\\n' "$(\(state(name, onHost: onHost)))"
        \(endpoint(name, onHost: onHost))
        """
    }

    /// Prints `running` or another word for the agent's state (`missing` when there is none).
    static func state(_ name: String, onHost: Bool) -> String {
        guard onHost else { return "docker inspect --format '{{.State.Status}}' \(shellQuote(name)) 2>/dev/null || echo missing" }
        return """
            \(folderVariable(name)); if [ ! -f "$f/pid" ]; then echo missing
            elif kill -0 "$(cat "$f/pid")" 2>/dev/null && ! grep -qs '^State:[[:space:]]*Z' "/proc/$(cat "$f/pid")/status"; then echo running
            else echo exited; fi
            """
    }

    /// Prints the agent's log, following it with `follow`.
    static func logs(_ name: String, onHost: Bool, follow: Bool, tail: Int?) -> String {
        if onHost {
            return "\(folderVariable(name)); tail -n \(tail.map { String(max(0, $0)) } ?? "+1")\(follow ? " -f" : "") \"$f/agent.log\""
        }
        return "docker logs\(follow ? " --follow" : "")\(tail.map { " --tail \(max(0, $0))" } ?? "") \(shellQuote(name))"
    }
}

extension ClusterState.NodeState {
    /// The shell command that prints the agent's log (`yonder logs`).
    public func logsCommand(follow: Bool, tail: Int?) -> String {
        NodeCommands.logs(container, onHost: isOnHost, follow: follow, tail: tail)
    }

    /// `NAME=VALUE` for the environment of a `yonder ssh` shell on a node with no container:
    /// the autostop watcher counts the processes that carry it as activity.
    public var sshSessionVariable: String {
        "\(AutostopWatcher.sessionVariable)=\(container)"
    }
}
