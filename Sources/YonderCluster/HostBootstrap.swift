import Foundation
import Yonder
import YonderLocalServers
import YonderSSH

/// A spec without an image: the agent runs on the node itself, as a process of the SSH user,
/// with its files in `~/.yonder/run/yonder-NAME-I` (see `NodeCommands`).
extension NodeBootstrap {
    func bringOnHost() async throws -> Outcome {
        let probe = try await timed("node", "checking the agent on \(node)") { try await probeHost() }
        if let state = probe.state {
            if state == "running", probe.build == agentBuild, let endpoint = probe.endpoint {
                report(ClusterProgress(node: index, step: "agent", detail: "reusing the agent on the node"))
                return Outcome(endpoint: endpoint, createdContainer: false)
            }
            report(ClusterProgress(node: index, step: "agent", detail: state == "running" ? "the agent runs another build; replacing it" : "the agent is \(state); starting it again"))
        }
        let resources = spec.resources
        if resources.cpus != nil || resources.memoryGB != nil || resources.accelerators != nil || resources.shmSize != nil {
            report(ClusterProgress(node: index, step: "agent", detail: "no image: the agent runs on the node itself, and resources are not enforced"))
        }
        do {
            let folder = "\(probe.home)/\(NodeCommands.hostFolder(container))"
            let stored = try await timed("agent", "installing the agent (build \(agentBuild))") { () async throws -> String in
                let sftp = try await session.sftp()
                defer { Task { await sftp.close() } }
                let stored = try await uploadAgent(sftp, home: probe.home)
                try await sftp.makeDirectory(folder, mode: 0o700)
                return stored
            }
            let endpoint = try await timed("start", "starting the agent on the node") { try await startOnHost(stored, folder: folder) }
            return Outcome(endpoint: endpoint, createdContainer: true)
        } catch {
            await Self.remove(NodeCommands.removal(container, onHost: true), over: session, reconnect: reconnect)
            throw error
        }
    }

    /// One command: the home folder, and the agent's state, build, token and port.
    func probeHost() async throws -> Probe {
        let folder = NodeCommands.hostFolder(container)
        let result = try await run("""
            echo "home $HOME"
            \(spec.autostop == nil ? AutostopWatcher.removal(container) : "")
            [ -f \(folder)/build ] || exit 0
            state=$(\(NodeCommands.state(container, onHost: true)))
            echo "state $state $(cat \(folder)/build)"
            \(NodeCommands.endpoint(container, onHost: true))
            """)
        guard result.status == .exited(0) else {
            throw ClusterError(.agentFailed, "\(node): cannot look for the agent: \(result.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return Self.parseProbe(result.stdoutText)
    }

    /// Starts the agent in the background, detached from the SSH session, and reads its pid
    /// from its listening line and its port and token from the file it wrote.
    func startOnHost(_ agent: String, folder: String) async throws -> AgentEndpoint {
        let environment = spec.agentEnvironment(rank: index)
        let f = shellQuote(folder)
        // The redirections are on the subshell, so that nothing of it keeps the SSH channel's
        // output open (sshd ends the command only when they close).
        let started = try await run("""
            if [ -f \(f)/pid ]; then kill "$(cat \(f)/pid)" 2>/dev/null; fi
            rm -f \(f)/pid \(f)/agent.log \(f)/\(AgentEndpoint.hostFileName) && printf '%s\\n' \(agentBuild) > \(f)/build || exit 1
            detach=; if command -v setsid >/dev/null 2>&1; then detach=setsid; fi
            (cd \(f) && exec env \(environment.map(shellQuote).joined(separator: " ")) $detach nohup \(shellQuote(agent)) serve \
              --host 127.0.0.1 --port 0 --new-token-file \(f)/\(AgentEndpoint.hostFileName) \
              --activity-file \(f)/activity --jobs-dir \(f)/jobs --build \(agentBuild)) > \(f)/agent.log 2>&1 < /dev/null &
            """)
        guard started.status == .exited(0) else {
            throw ClusterError(.agentFailed, "\(node): cannot start the agent: \(started.stderrText.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        for _ in 0..<200 {
            let found = try await run("""
                printf '\\nlistening '; grep '"event":"listening"' \(f)/agent.log 2>/dev/null | tail -n 1
                \(NodeCommands.endpoint(container, onHost: true))
                """).stdoutText
            if let line = AgentEndpoint.field("listening", in: found), let listening = AgentListening(line: line), let pid = listening.pid,
                let endpoint = AgentEndpoint.parse(found)
            {
                _ = try await run("echo \(pid) > \(f)/pid")
                return endpoint
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let log = try await run("tail -n 40 \(f)/agent.log 2>&1").stdoutText
        throw ClusterError(.agentFailed, "\(node): the agent did not start on the node; its last output: \(log)")
    }
}
