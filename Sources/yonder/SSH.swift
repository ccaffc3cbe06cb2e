import ArgumentParser
import Foundation
import YonderCluster
import YonderSSH

#if canImport(Glibc)
import Glibc
#endif

struct SSH: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ssh",
        abstract: "Open a shell inside a node's container, or run a command there.",
        discussion: """
            With a terminal, you get a real PTY of your terminal's size that follows resizes; \
            bash when the image has it, else sh. Exits with the remote status.

            Examples:
              yonder ssh demo
              yonder ssh demo --node 1 -- nvidia-smi
            """)

    @OptionGroup var target: NodeOptions

    @Argument(parsing: .postTerminator, help: "A command to run instead of a shell, after --.")
    var command: [String] = []

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        var status: Int32 = 0
        try await reportingErrors {
            let (state, node, session) = try await target.connect()
            let tty = isatty(0) == 1 ? "-it" : "-i"
            let quoted = command.map(shellQuote).joined(separator: " ")
            let remote: String
            if node.isOnHost {
                // No container: a login shell on the node, or the command there, with the
                // environment the agent has.
                let environment = (state.spec.agentEnvironment(rank: target.node) + [node.sshSessionVariable]).map(shellQuote).joined(separator: " ")
                remote = "env \(environment) " + (command.isEmpty ? "\"${SHELL:-/bin/sh}\" -l" : quoted)
            } else if command.isEmpty {
                // An image without a shell: say so in one line rather than Docker's OCI error.
                let probe = try await session.run("docker exec \(shellQuote(node.container)) sh -c true", timeout: .seconds(30))
                if probe.status != .exited(0) {
                    let reason = (probe.stderrText + probe.stdoutText).trimmingCharacters(in: .whitespacesAndNewlines)
                    await session.close()
                    // Docker says so on either stream, and exits 126 or 127 (cannot run / not found).
                    if reason.contains("executable file not found") || reason.contains("no such file")
                        || probe.status == .exited(126) || probe.status == .exited(127)
                    {
                        throw ValidationError("the image of \(node.container) has no shell (/bin/sh); run a program of the image instead: yonder ssh \(target.name) -- PROGRAM")
                    }
                    throw ValidationError("cannot run a shell in \(node.container): \(reason.split(separator: "\n").last.map(String.init) ?? "\(probe.status)"); see yonder status \(target.name)")
                }
                // docker sizes the exec's terminal only after it started, so a shell could see
                // 0x0 for a moment; set the size first (later resizes come through docker).
                let fit = SSHSession.terminalSize(of: 0).map { "stty rows \($0.rows) cols \($0.columns) 2>/dev/null; " } ?? ""
                remote = "docker exec \(tty) \(node.container) sh -c '\(fit)if command -v bash >/dev/null 2>&1; then exec bash; else exec sh; fi'"
            } else {
                remote = "docker exec \(tty) \(node.container) \(quoted)"
            }
            let exit = try await session.interactiveShell(command: remote)
            await session.close()
            status = exit.shellStatus
        }
        if status != 0 { throw ExitCode(status) }
    }
}
