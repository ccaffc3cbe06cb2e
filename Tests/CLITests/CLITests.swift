import Foundation
import Testing
import TestSupport
import YonderCluster
import YonderLocalServers

#if canImport(Glibc)
import Glibc
#endif

/// The `yonder` executable end to end on a local cluster (real dockerd and sshd).
enum CLITestEnvironment {
    static var shouldRun: Bool {
        let agent = ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"]
        let ready = LocalSSHServer.toolsInstalled && agent.map { FileManager.default.isExecutableFile(atPath: $0) } == true
            && (try? ChildProcess.run("/usr/bin/env", ["docker", "image", "inspect", "yonder/debian:bookworm"])) != nil
        if !ready && !runningUnderCI {
            print("CLI tests skipped: they need dockerd with yonder/debian:bookworm, sshd, and YONDER_STATIC_AGENT (bash scripts/test.sh sets all)")
        }
        return ready || runningUnderCI
    }
}

@Suite(.serialized, .enabled(if: CLITestEnvironment.shouldRun))
struct CLITests {
    let home: URL
    init() throws {
        home = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-cli-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
    }

    /// Runs `yonder ARGS` with its own YONDER_HOME; returns the exit code and the output.
    func yonder(_ arguments: String...) throws -> (exitCode: Int32, output: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["YONDER_HOME"] = home.path
        environment["YONDER_AGENT"] = environment["YONDER_STATIC_AGENT"]
        return try ChildProcess.runCapturing(RepositoryPaths.executable("yonder").path, arguments, environment: environment)
    }

    @Test func upStatusExecDown() throws {
        let name = "cli\(UInt16.random(in: 0...UInt16.max))"
        let spec = home.appendingPathComponent("spec.yaml").path
        try "name: \(name)\nimage_id: docker:yonder/debian:bookworm\nenvs: {MARK: from-cli}\n".write(toFile: spec, atomically: true, encoding: .utf8)

        let up = try yonder("up", spec)
        #expect(up.exitCode == 0, "\(up.output)")
        #expect(up.output.contains("[node 0] container: creating yonder-\(name)-0"))
        #expect(up.output.contains("is up with 1 node(s)"))

        let status = try yonder("status")
        #expect(status.exitCode == 0)
        #expect(status.output.contains(name) && status.output.contains("yonder/debian:bookworm"))
        let json = try yonder("status", name, "--json")
        let decoded = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]]
        #expect((decoded?.first?["nodes"] as? [Any])?.count == 1)

        let exec = try yonder("exec", name, "--", "sh", "-c", "echo $MARK; exit 3")
        #expect(exec.output == "from-cli\n", "yonder exec printed: \(exec.output)")
        #expect(exec.exitCode == 3)

        // Without a terminal, `yonder ssh NAME -- CMD` runs CMD in the container and exits with
        // its status.
        let ssh = try yonder("ssh", name, "--", "sh", "-c", "echo $MARK in $(cat /etc/debian_version | cut -c1-2); exit 4")
        #expect(ssh.output == "from-cli in 12\n", "yonder ssh printed: \(ssh.output)")
        #expect(ssh.exitCode == 4)
        let sshBadNode = try yonder("ssh", name, "--node", "3")
        #expect(sshBadNode.exitCode == 1 && sshBadNode.output.contains("has no node 3"))

        let badNode = try yonder("exec", name, "--node", "5", "--", "true")
        #expect(badNode.exitCode == 1)
        #expect(badNode.output.contains("has no node 5"))

        let down = try yonder("down", name)
        #expect(down.exitCode == 0)
        #expect(down.output.contains("cluster \(name) is down"))
        #expect(try yonder("status").output.contains("no clusters"))
    }

    /// `yonder ssh` in a real terminal (tmux): the prompt is in the container, a resize reaches
    /// it, `exit 3` makes the CLI exit 3, and the local terminal is restored afterwards.
    @Test func sshInARealTerminal() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tmux") else {
            if runningUnderCI { Issue.record("tmux is missing; apt-get install tmux") } else { print("skipped: install tmux") }
            return
        }
        let name = "cli\(UInt16.random(in: 0...UInt16.max))"
        let spec = home.appendingPathComponent("spec.yaml").path
        try "name: \(name)\nimage_id: docker:yonder/debian:bookworm\n".write(toFile: spec, atomically: true, encoding: .utf8)
        #expect(try yonder("up", spec).exitCode == 0)
        let socket = "yonder-test-\(name)"
        @discardableResult
        func tmux(_ arguments: String...) throws -> String {
            try ChildProcess.run("/usr/bin/tmux", ["-L", socket] + arguments)
        }
        let yonderPath = RepositoryPaths.executable("yonder").path
        let script = "YONDER_HOME=\(home.path) YONDER_AGENT=x \(yonderPath) ssh \(name); echo EXITED $?; stty -a | grep -o -- '-*icanon'; sleep 60"
        try tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "30", script)
        defer {
            _ = try? tmux("kill-server")
            _ = try? yonder("down", name)
        }
        func screen(until marker: String) async throws -> String {
            var text = ""
            for _ in 0..<100 {
                text = try tmux("capture-pane", "-t", "t", "-p")
                if text.contains(marker) { return text }
                try await Task.sleep(for: .milliseconds(100))
            }
            return text
        }
        _ = try await screen(until: "#")
        try tmux("send-keys", "-t", "t", "echo in-$YONDER_CLUSTER; stty size", "Enter")
        let first = try await screen(until: "30 100")
        #expect(first.contains("in-\(name)"), "screen: \(first)")
        #expect(first.contains("30 100"))
        try tmux("resize-window", "-t", "t", "-x", "120", "-y", "40")
        try await Task.sleep(for: .milliseconds(500))
        try tmux("send-keys", "-t", "t", "stty size; exit 3", "Enter")
        let last = try await screen(until: "EXITED 3")
        #expect(last.contains("40 120"), "screen: \(last)")
        #expect(last.contains("EXITED 3"))
        // The terminal is back in canonical mode ("icanon", not "-icanon").
        let after = try await screen(until: "icanon")
        #expect(after.split(separator: "\n").contains { $0.trimmingCharacters(in: .whitespaces) == "icanon" }, "screen: \(after)")
    }

    @Test func badInputSaysWhatIsWrong() throws {
        let unknown = try yonder("exec", "nope", "--", "true")
        #expect(unknown.exitCode == 1)
        #expect(unknown.output.contains("no cluster named nope"))
        let badPath = try yonder("up", "/no/such.yaml")
        #expect(badPath.exitCode == 1)
        #expect(badPath.output.contains("/no/such.yaml does not exist"))
        let help = try yonder("--help")
        #expect(help.exitCode == 0 && help.output.contains("yonder up cluster.yaml"))
    }
}
