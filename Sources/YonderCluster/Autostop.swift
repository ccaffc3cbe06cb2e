import Foundation

/// The autostop watcher: a small shell script that runs on each node, beside its container
/// (or its agent, with no image), and stops it once it has been idle for the spec's limit.
///
/// It runs on the node, not on the client, so an idle cluster stops even when the client's
/// machine is off. Once a few seconds (at most 10), it reads:
/// - the container's state and its running `docker exec` sessions (`yonder ssh` is one);
///   with no image, whether the agent runs and whether a `yonder ssh` shell is open;
/// - the agent's activity file (`--activity-file`): when a request last ran, and how many
///   run now (calls, execs, object calls and file transfers; `yonder status` does not count).
///
/// When the node has been idle for the limit, it stops the container (`docker stop`, or
/// `docker rm -f` with `down`), or the agent with no image, and on `aws` then shuts the
/// machine down (`shutdown -h now`; the instance stops, or terminates with `down`, as its
/// shutdown behaviour says). It keeps `state` (`LAST_ACTIVE LIMIT NOW`, Unix seconds) for
/// `yonder status`, and `log` for what it did, in `~/.yonder/autostop/CONTAINER/`.
///
/// It ends when its container (or agent) is stopped or gone, when its folder is removed, or
/// when a newer watcher replaces it; whoever starts the container again starts it again
/// (`up`, or a connect that finds the container stopped).
enum AutostopWatcher {
    /// The watcher's folder on the node, relative to the SSH user's home.
    static func folder(_ container: String) -> String { ".yonder/autostop/\(container)" }

    /// Seconds between two looks: a quarter of the limit, from 1 to 10.
    static func interval(_ autostop: ClusterSpec.Autostop) -> Int {
        max(1, min(10, autostop.idleSeconds / 4))
    }

    /// The environment variable `yonder ssh` sets in a shell on a node with no container,
    /// naming the agent's folder, so that the watcher sees the shell is open.
    static let sessionVariable = "YONDER_SSH_SESSION"

    /// The script for `container`.
    static func script(container: String, onHost: Bool, autostop: ClusterSpec.Autostop, shutsDownMachine: Bool) -> String {
        let c = shellQuote(container)
        let look: String
        let stop: String
        if onHost {
            // No container: the agent's pid, and shells `yonder ssh` opened (marked in their
            // environment; /proc shows this user's processes' environments).
            look = """
                pid=$(cat "$a/pid" 2>/dev/null)
                    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then rm -f "$d/pid"; exit 0; fi
                    if grep -qsxz "\(sessionVariable)=\(container)" /proc/[0-9]*/environ; then last=$now; fi
                    set -- $(cat "$a/activity" 2>/dev/null)
                """
            stop = autostop.down ? #"kill "$pid"; rm -rf "$a""# : #"kill "$pid""#
        } else {
            look = """
                set -- $(docker inspect --format '{{.State.Status}} {{len .ExecIDs}}' \(c) 2>/dev/null)
                    case "$1" in
                    running) ;;
                    restarting) last=$now; continue ;;
                    *) rm -f "$d/pid"; exit 0 ;;
                    esac
                    if [ "${2:-0}" -gt 0 ]; then last=$now; fi
                    set -- $(docker cp \(c):\(AgentEndpoint.activityFile) - 2>/dev/null | tar -xO 2>/dev/null)
                """
            stop = autostop.down ? "docker rm -f \(c) >/dev/null" : "docker stop \(c) >/dev/null"
        }
        let machine = shutsDownMachine
            ? "\n    sudo -n shutdown -h now >>\"$d/log\" 2>&1 || shutdown -h now >>\"$d/log\" 2>&1"
            : ""
        return """
            #!/bin/sh
            # Yonder's autostop watcher for \(container): \(autostop).
            cd || exit 1
            d=\(shellQuote(folder(container)))
            a=\(shellQuote(NodeCommands.hostFolder(container)))
            limit=\(autostop.idleSeconds)
            echo $$ > "$d/pid"
            last=$(date +%s)
            while sleep \(interval(autostop)); do
                [ "$(cat "$d/pid" 2>/dev/null)" = "$$" ] || exit 0
                now=$(date +%s)
                \(look)
                # The agent's line: when a request last ran, and how many run now.
                if [ "${2:-0}" -gt 0 ]; then last=$now; elif [ "${1:-0}" -gt "$last" ]; then last=$1; fi
                echo "$last $limit $now" > "$d/state"
                [ $((now - last)) -ge $limit ] || continue
                echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) idle for $((now - last)) s (limit $limit s): \(autostop.down ? "removing" : "stopping") \(container)" >> "$d/log"
                \(stop)\(machine)
                rm -f "$d/pid"
                exit 0
            done
            """
    }

    /// Shell that ends the watcher running from `d` (only a process whose command line names
    /// its script).
    private static let endRunning = #"old=$(cat "$d/pid" 2>/dev/null) && tr '\0' ' ' < "/proc/$old/cmdline" 2>/dev/null | grep -qF "$d/watch" && kill "$old" 2>/dev/null"#

    /// Shell that starts the watcher from `d` in the background, detached from the session.
    private static let launch = #"detach=; if command -v setsid >/dev/null 2>&1; then detach=setsid; fi; ($detach nohup sh "$d/watch" >/dev/null 2>>"$d/log" </dev/null &)"#

    /// Shell that writes the script (from standard input) and starts it, replacing a running
    /// watcher.
    static func install(_ container: String) -> String {
        """
        d=\(shellQuote(folder(container))); mkdir -p "$d" && chmod 700 "$d" && cat > "$d/watch.new" && mv "$d/watch.new" "$d/watch" || exit 1
        \(endRunning); rm -f "$d/pid" "$d/state"; \(launch)
        """
    }

    /// Shell that starts the watcher when it is installed but does not run (the container was
    /// started again outside `up`).
    static func ensure(_ container: String) -> String {
        """
        d=\(shellQuote(folder(container))); if [ -f "$d/watch" ] && ! { old=$(cat "$d/pid" 2>/dev/null) && kill -0 "$old" 2>/dev/null; }; then \(launch); fi
        """
    }

    /// Shell that ends the watcher and removes its folder (autostop taken out of the spec, or
    /// `down`).
    static func removal(_ container: String) -> String {
        """
        d=\(shellQuote(folder(container))); if [ -d "$d" ]; then \(endRunning); rm -rf "$d"; fi
        """
    }

    /// Shell that prints `yonder-autostop LAST LIMIT NOW WATCHING` (WATCHING is 1 when the
    /// watcher runs), or nothing when there is no watcher.
    static func status(_ container: String) -> String {
        """
        d=\(shellQuote(folder(container))); if [ -f "$d/watch" ]; then w=0; old=$(cat "$d/pid" 2>/dev/null) && kill -0 "$old" 2>/dev/null && w=1; \
        set -- $(cat "$d/state" 2>/dev/null); echo "yonder-autostop ${1:-0} ${2:-0} $(date +%s) $w"; fi
        """
    }

    /// What `status` printed: seconds idle, and whether the watcher runs.
    static func parseStatus(_ output: String) -> (idle: Double?, watching: Bool)? {
        guard let line = AgentEndpoint.field("yonder-autostop", in: output) else { return nil }
        let numbers = line.split(separator: " ").compactMap { Double($0) }
        guard numbers.count == 4 else { return nil }
        let idle = numbers[0] > 0 ? max(0, numbers[2] - numbers[0]) : nil
        return (idle, numbers[3] == 1)
    }
}
