/// The shell commands that reach a node's agent, in a container or (a spec without an image)
/// running on the node itself with its files in `~/.yonder/run/NAME`: token, pid, build and
/// `agent.log` (its output and log, as `docker logs` holds them for a container).
enum NodeCommands {
    /// The agent's folder on the node, relative to the SSH user's home.
    static func hostFolder(_ name: String) -> String { ".yonder/run/\(name)" }

    /// Removes the container, or stops the agent's process and removes its folder. The
    /// recorded pid is signalled only when that process's command line names the folder's
    /// token file (a pid reused by another program is left alone).
    static func removal(_ name: String, onHost: Bool) -> String {
        guard onHost else { return "docker rm -f \(name)" }
        let folder = hostFolder(name)
        return """
            if [ -f \(folder)/pid ]; then pid=$(cat \(folder)/pid); \
            if tr '\\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "/\(folder)/token "; then kill "$pid" 2>/dev/null; fi; fi; rm -rf \(folder)
            """
    }

    /// Prints the agent's token.
    static func token(_ name: String, onHost: Bool) -> String {
        onHost ? "cat \(hostFolder(name))/token" : "docker cp \(name):/yonder/token - | tar -xO"
    }

    /// Prints `running` or another word for the agent's state (`missing` when there is none).
    static func state(_ name: String, onHost: Bool) -> String {
        guard onHost else { return "docker inspect --format '{{.State.Status}}' \(name) 2>/dev/null || echo missing" }
        let folder = hostFolder(name)
        return """
            if [ ! -f \(folder)/pid ]; then echo missing
            elif kill -0 "$(cat \(folder)/pid)" 2>/dev/null && ! grep -qs '^State:[[:space:]]*Z' "/proc/$(cat \(folder)/pid)/status"; then echo running
            else echo exited; fi
            """
    }

    /// Prints the agent's log, following it with `follow`.
    static func logs(_ name: String, onHost: Bool, follow: Bool, tail: Int?) -> String {
        if onHost {
            return "tail -n \(tail.map { String(max(0, $0)) } ?? "+1")\(follow ? " -f" : "") \(hostFolder(name))/agent.log"
        }
        return "docker logs\(follow ? " --follow" : "")\(tail.map { " --tail \(max(0, $0))" } ?? "") \(name)"
    }
}

extension ClusterState.NodeState {
    /// The shell command that prints the agent's log (`yonder logs`).
    public func logsCommand(follow: Bool, tail: Int?) -> String {
        NodeCommands.logs(container, onHost: isOnHost, follow: follow, tail: tail)
    }
}
