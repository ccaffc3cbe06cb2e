import Foundation
import Testing
import TestSupport
import QuickStartShared
import Yonder
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
    func yonder(_ arguments: String..., environment extra: [String: String] = [:]) throws -> (exitCode: Int32, output: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["YONDER_HOME"] = home.path
        environment["YONDER_AGENT"] = environment["YONDER_STATIC_AGENT"]
        environment.merge(extra) { $1 }
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
        let json = try yonder("status", "--json")
        let decoded = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]]
        #expect((decoded?.first?["nodes"] as? [Any])?.count == 1)
        // One cluster: each node visited, its container's state and the agent's build.
        let nodeStatus = try yonder("status", name)
        #expect(nodeStatus.exitCode == 0)
        #expect(nodeStatus.output.contains("yonder-\(name)-0  running  0.1.0 build "), "status: \(nodeStatus.output)")
        let report = try JSONSerialization.jsonObject(with: Data(try yonder("status", name, "--json").output.utf8)) as? [String: Any]
        let reported = (report?["nodes"] as? [[String: Any]])?.first
        #expect(reported?["containerState"] as? String == "running")
        #expect((reported?["agentUptime"] as? Double).map { $0 >= 0 && $0 < 600 } == true)

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

        let unknown = try yonder("exec", "nope", "--", "true")
        #expect(unknown.exitCode == 1 && unknown.output.contains("no cluster named nope") && unknown.output.contains(name), "\(unknown.output)")

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
        func screen(until marker: String, session: String = "t") async throws -> String {
            var text = ""
            for _ in 0..<100 {
                text = try tmux("capture-pane", "-t", session, "-p")
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

        // Plain OpenSSH with the ssh-config block: a shell in the container, of the terminal's
        // size, whose exit status is ssh's.
        let config = home.appendingPathComponent("ssh_config").path
        try yonder("ssh-config", name).output.write(toFile: config, atomically: true, encoding: .utf8)
        try tmux("new-session", "-d", "-s", "u", "-x", "100", "-y", "30", "HOME=\(home.path) ssh -F \(config) yonder-\(name); echo EXITED $?; sleep 60")
        _ = try await screen(until: "#", session: "u")
        try tmux("send-keys", "-t", "u", "echo plain-$YONDER_CLUSTER; stty size; exit 4", "Enter")
        let plain = try await screen(until: "EXITED", session: "u")
        #expect(plain.contains("plain-\(name)") && plain.contains("30 100") && plain.contains("EXITED 4"), "screen: \(plain)")
    }

    /// `call`, `objects`, `logs` and `status` against the quick start's agent (user functions
    /// and a counter object), and `ssh-config` with plain OpenSSH.
    @Test func callObjectsLogsAndSSHConfig() async throws {
        guard let agent = ProcessInfo.processInfo.environment["YONDER_QUICKSTART_AGENT"] else {
            if runningUnderCI { Issue.record("YONDER_QUICKSTART_AGENT is not set (scripts/test.sh builds it)") } else { print("skipped: set YONDER_QUICKSTART_AGENT to a static quickstart-agent") }
            return
        }
        let name = "cli\(UInt16.random(in: 0...UInt16.max))"
        let spec = home.appendingPathComponent("spec.yaml").path
        try "name: \(name)\nimage_id: docker:yonder/debian:bookworm\nagent: \(agent)\n".write(toFile: spec, atomically: true, encoding: .utf8)
        let userHome = home.appendingPathComponent("user")
        try FileManager.default.createDirectory(at: userHome.appendingPathComponent(".ssh"), withIntermediateDirectories: true)
        let asUser = ["HOME": userHome.path]
        #expect(try yonder("up", spec).exitCode == 0)
        defer { _ = try? yonder("down", name, environment: asUser) }

        // call: JSON in, JSON out; the function's log lines on stderr.
        let sum = try yonder("call", name, "Add", "[1, 2, 39]")
        #expect(sum.exitCode == 0 && sum.output == "42\n", "call printed: \(sum.output)")
        let greet = try yonder("call", name, "Greet", "\"cli\"")
        #expect(greet.output.contains("greeting cli") && greet.output.contains("\"Hello, cli, from node 0, process"), "call printed: \(greet.output)")
        let badJSON = try yonder("call", name, "Add", "[1,")
        #expect(badJSON.exitCode == 1 && badJSON.output.contains("not valid JSON (unexpected end at byte 3)"), "\(badJSON.output)")
        let unknown = try yonder("call", name, "NoSuchFunction")
        #expect(unknown.exitCode == 1 && unknown.output.contains("NoSuchFunction"), "\(unknown.output)")

        // objects: a named counter made by another process shows up, with its type.
        #expect(try yonder("objects", name).output.contains("no named objects"))
        setenv("YONDER_HOME", home.path, 1)
        let cluster = try await Cluster.attach(name)
        let counter = try await cluster.connection().create(Counter.self, .init(start: 5), name: "tally")
        #expect(try await counter.increment(by: 1) == 6)
        await cluster.close()
        let objects = try yonder("objects", name)
        #expect(objects.exitCode == 0 && objects.output.contains("tally") && objects.output.contains("Counter"), "objects: \(objects.output)")
        #expect(try yonder("status", name).output.contains("tally (Counter)"))

        // logs: the agent's log, and -f follows it until interrupted.
        let logs = try yonder("logs", name)
        #expect(logs.exitCode == 0 && logs.output.contains("\"event\":\"listening\"") && logs.output.contains("greeting cli"), "logs: \(logs.output)")
        #expect(try yonder("logs", name, "--node", "4").output.contains("has no node 4"))
        var environment = ProcessInfo.processInfo.environment
        environment["YONDER_HOME"] = home.path
        let followed = home.appendingPathComponent("follow.log").path
        let follower = try ChildProcess.spawn(RepositoryPaths.executable("yonder").path, ["logs", name, "-f", "--tail", "1"], environment: environment, output: followed)
        #expect(try yonder("call", name, "Greet", "\"later\"").exitCode == 0)
        var seen = ""
        for _ in 0..<100 where !seen.contains("greeting later") {
            try await Task.sleep(for: .milliseconds(100))
            seen = (try? String(contentsOfFile: followed, encoding: .utf8)) ?? ""
        }
        kill(follower, SIGTERM)
        _ = ChildProcess.wait(follower)
        #expect(seen.contains("greeting later"), "logs -f printed: \(seen)")

        // ssh-config: plain OpenSSH with the printed block runs a command in the container.
        let printed = try yonder("ssh-config", name)
        #expect(printed.exitCode == 0 && printed.output.contains("Host yonder-\(name) yonder-\(name)-0"))
        let configFile = home.appendingPathComponent("ssh_config").path
        try printed.output.write(toFile: configFile, atomically: true, encoding: .utf8)
        func ssh(_ config: String, _ host: String, _ command: String) throws -> (exitCode: Int32, output: String) {
            try ChildProcess.runCapturing("/usr/bin/ssh", ["-F", config, "-o", "BatchMode=yes", host, command], environment: ["HOME": userHome.path, "PATH": "/usr/bin:/bin"])
        }
        let inside = try ssh(configFile, "yonder-\(name)", "echo in-$YONDER_CLUSTER; exit 7")
        #expect(inside.output.contains("in-\(name)") && inside.exitCode == 7, "ssh printed: \(inside.output)")

        // --write: replaces an older block, keeps the user's lines, and down takes it out.
        let userConfig = userHome.appendingPathComponent(".ssh/config").path
        try "# >>> yonder \(name) >>>\nHost yonder-\(name)\n    Port 1\n# <<< yonder \(name) <<<\n\nServerAliveInterval 30\n".write(toFile: userConfig, atomically: true, encoding: .utf8)
        #expect(try yonder("ssh-config", name, "--write", environment: asUser).exitCode == 0)
        let written = try String(contentsOfFile: userConfig, encoding: .utf8)
        #expect(written.components(separatedBy: "# >>> yonder \(name) >>>").count == 2 && !written.contains("Port 1\n"), "config: \(written)")
        #expect(written.hasSuffix("Match all\n# <<< yonder \(name) <<<\n\nServerAliveInterval 30\n"), "config: \(written)")
        #expect(try ssh(userConfig, "yonder-\(name)-0", "cat /etc/debian_version").output.hasPrefix("12"))

        // The node's sshd dies; up starts another on a new port and updates the written block.
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: home.appendingPathComponent("clusters/\(name).json"))) as? [String: Any]
        let sshd = try #require(((state?["nodes"] as? [[String: Any]])?.first?["sshdProcessID"] as? NSNumber)?.int32Value)
        let port = try #require((state?["nodes"] as? [[String: Any]])?.first?["port"] as? Int)
        kill(sshd, SIGTERM)
        for _ in 0..<50 where LocalSSHServer.canConnect(port: port) { try await Task.sleep(for: .milliseconds(100)) }
        let again = try yonder("up", spec, environment: asUser)
        #expect(again.exitCode == 0 && again.output.contains("updated the block for \(name)"), "up printed: \(again.output)")
        #expect(try String(contentsOfFile: userConfig, encoding: .utf8) != written)
        #expect(try ssh(userConfig, "yonder-\(name)", "echo $YONDER_NODE_RANK").output == "0\n")

        #expect(try yonder("down", name, environment: asUser).exitCode == 0)
        #expect(try String(contentsOfFile: userConfig, encoding: .utf8) == "ServerAliveInterval 30\n")
        let authorized = try String(contentsOfFile: home.appendingPathComponent("local/authorized_keys").path, encoding: .utf8)
        #expect(!authorized.contains("yonder-enter:\(name)-"))
        #expect(try ssh(configFile, "yonder-\(name)", "true").exitCode != 0)
    }

    /// No image: the agent runs on the node itself; ssh gets the node's shell with the
    /// agent's environment, logs read the agent's log file.
    @Test func aClusterWithoutAnImage() throws {
        let name = "cli\(UInt16.random(in: 0...UInt16.max))"
        let spec = home.appendingPathComponent("spec.yaml").path
        try "name: \(name)\nenvs: {MARK: on-the-node}\n".write(toFile: spec, atomically: true, encoding: .utf8)
        let up = try yonder("up", spec)
        #expect(up.exitCode == 0 && up.output.contains("starting the agent on the node"), "\(up.output)")
        defer { _ = try? yonder("down", name) }
        let status = try yonder("status", name)
        #expect(status.output.contains("- (on the node)  running"), "\(status.output)")
        let here = home.appendingPathComponent("only-here").path
        try "here".write(toFile: here, atomically: true, encoding: .utf8)
        let ssh = try yonder("ssh", name, "--", "sh", "-c", "echo $MARK $YONDER_CLUSTER; cat \(here); exit 5")
        #expect(ssh.output == "on-the-node \(name)\nhere" && ssh.exitCode == 5, "\(ssh.output)")
        #expect(try yonder("logs", name).output.contains("\"event\":\"listening\""))
        let down = try yonder("down", name)
        #expect(down.exitCode == 0 && down.output.contains("stopped the agent"), "\(down.output)")
        #expect(!FileManager.default.fileExists(atPath: NSHomeDirectory() + "/.yonder/run/yonder-\(name)-0"))
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

    @Test func aRestartedAgentAndAnImageWithoutAShellSayWhatHappened() throws {
        // An image holding one static program and nothing else: no shell.
        let root = home.appendingPathComponent("rootfs")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("app"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"]!, toPath: root.appendingPathComponent("app/program").path)
        let image = "yonder-test/cli-no-shell:1"
        try ChildProcess.run("/bin/sh", ["-c", "tar -C \(root.path) -c . | docker import - \(image)"])
        defer { _ = try? ChildProcess.run("/usr/bin/env", ["docker", "rmi", "-f", image]) }
        let name = "cli\(UInt16.random(in: 0...UInt16.max))"
        let spec = home.appendingPathComponent("bare.yaml").path
        try "name: \(name)\nimage_id: docker:\(image)\n".write(toFile: spec, atomically: true, encoding: .utf8)
        let up = try yonder("up", spec)
        #expect(up.exitCode == 0, "\(up.output)")
        defer { _ = try? yonder("down", name) }

        let ssh = try yonder("ssh", name)
        #expect(ssh.exitCode == 1)
        #expect(ssh.output == "yonder: the image of yonder-\(name)-0 has no shell (/bin/sh); run a program of the image instead: yonder ssh \(name) -- PROGRAM\n", "yonder ssh printed: \(ssh.output)")

        // The agent restarted (a new port and token): the next command finds it, and says so.
        _ = try ChildProcess.run("/usr/bin/env", ["docker", "restart", "-t", "1", "yonder-\(name)-0"])
        let objects = try yonder("objects", name)
        #expect(objects.exitCode == 0, "\(objects.output)")
        #expect(objects.output.contains("restarted since it was last seen; every object it held is gone"), "\(objects.output)")
        let again = try yonder("objects", name)
        #expect(again.exitCode == 0 && !again.output.contains("restarted"), "told once: \(again.output)")
        let down = try yonder("down", name)
        #expect(down.exitCode == 0, "\(down.output)")
    }
}

/// The CLI when things break: concurrent ups, Ctrl-C, status of a broken node, exec's input,
/// usage errors.
@Suite(.serialized, .enabled(if: CLITestEnvironment.shouldRun))
struct CLIFaultTests {
    let home: URL
    init() throws {
        home = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-cli-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
    }

    var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["YONDER_HOME"] = home.path
        environment["YONDER_AGENT"] = environment["YONDER_STATIC_AGENT"]
        return environment
    }

    func yonder(_ arguments: String...) throws -> (exitCode: Int32, output: String) {
        try ChildProcess.runCapturing(RepositoryPaths.executable("yonder").path, arguments, environment: environment)
    }

    /// Starts `yonder ARGS` in the background with its output in `log`.
    func start(_ arguments: [String], log: String, extra: [String: String] = [:]) throws -> pid_t {
        try ChildProcess.spawn(RepositoryPaths.executable("yonder").path, arguments, environment: environment.merging(extra) { $1 }, output: log)
    }

    func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    /// Waits until `log` holds `marker` (or `pid` ended); returns whether it does.
    func wait(for marker: String, in log: String, pid: pid_t) async throws -> Bool {
        // Generous: other work on the machine can slow an up down a lot.
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            if read(log).contains(marker) { return true }
            if waitpid(pid, nil, WNOHANG) == pid { return read(log).contains(marker) }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    func exitCode(_ status: Int32) -> Int32 { status & 0x7f != 0 ? 128 + (status & 0x7f) : (status >> 8) & 0xff }

    func containers(_ name: String) throws -> [String] {
        try ChildProcess.run("/usr/bin/env", ["docker", "ps", "-a", "--filter", "label=yonder.cluster=\(name)", "--format", "{{.Names}}"])
            .split(separator: "\n").map(String.init).sorted()
    }

    func sshdProcesses(_ name: String, _ node: Int) -> [pid_t] {
        let text = (try? ChildProcess.run("/usr/bin/pgrep", ["-f", home.appendingPathComponent("local/\(name)-\(node)/sshd_config").path])) ?? ""
        return text.split(separator: "\n").compactMap { pid_t($0) }
    }

    func writeSpec(_ name: String, nodes: Int = 1) throws -> String {
        let spec = home.appendingPathComponent("\(name).yaml").path
        try "name: \(name)\nnum_nodes: \(nodes)\nimage_id: docker:yonder/debian:bookworm\n".write(toFile: spec, atomically: true, encoding: .utf8)
        return spec
    }

    /// Two `yonder up` of one spec at once: the second fails at once naming the first (a mature
    /// tool does not queue behind a long operation silently); one sshd per node and one
    /// container per node are left, and sshd has none of yonder's environment.
    @Test func twoConcurrentUpsLeaveOneOfEach() async throws {
        let name = "cf\(UInt16.random(in: 0...UInt16.max))"
        let spec = try writeSpec(name, nodes: 2)
        defer { _ = try? yonder("down", name) }
        let firstLog = home.appendingPathComponent("first.log").path, secondLog = home.appendingPathComponent("second.log").path
        let secret = ["YONDER_TEST_SECRET": "must-not-reach-sshd"]
        let first = try start(["up", spec], log: firstLog, extra: secret)
        #expect(try await wait(for: "sshd: private sshd", in: firstLog, pid: first))
        let second = try start(["up", spec], log: secondLog, extra: secret)
        let secondStatus = exitCode(ChildProcess.wait(second))
        let firstStatus = exitCode(ChildProcess.wait(first))
        #expect(firstStatus == 0, "first up: \(read(firstLog))")
        #expect(secondStatus == 1)
        let refused = read(secondLog)
        #expect(refused.contains("yonder: cluster \(name) is being brought up by pid \(first) (started ") && refused.contains("wait for it or stop it"), "second up: \(refused)")
        #expect(refused.split(separator: "\n").count == 1, "second up: \(refused)")
        #expect(try containers(name) == ["yonder-\(name)-0", "yonder-\(name)-1"])
        for node in 0..<2 {
            let listeners = sshdProcesses(name, node)
            #expect(listeners.count == 1, "node \(node): sshd processes \(listeners)")
            // Its environment is a minimal one, without the secret yonder had in its own.
            #expect(listeners.first.flatMap { processMemory(of: $0, contains: "PATH=/usr/local/sbin:") } == true)
            #expect(listeners.first.flatMap { processMemory(of: $0, contains: "must-not-reach-sshd") } == false)
        }
        let down = try yonder("down", name)
        #expect(down.exitCode == 0 && down.output.contains("cluster \(name) is down"), "\(down.output)")
        #expect(try containers(name).isEmpty)
        #expect((0..<2).allSatisfy { sshdProcesses(name, $0).isEmpty })
        #expect(!FileManager.default.fileExists(atPath: home.appendingPathComponent("local/\(name)-0").path))
    }

    /// Ctrl-C during `up`, once the container was made: what it made is removed and the
    /// status is 130.
    @Test func interruptingUpUndoesIt() async throws {
        let name = "cf\(UInt16.random(in: 0...UInt16.max))"
        let spec = try writeSpec(name)
        let log = home.appendingPathComponent("up.log").path
        let up = try start(["up", spec], log: log)
        #expect(try await wait(for: "container: creating yonder-\(name)-0", in: log, pid: up))
        kill(up, SIGINT)
        let status = exitCode(ChildProcess.wait(up))
        let output = read(log)
        #expect(status == 130, "up: \(output)")
        #expect(output.contains("was interrupted; what it made was removed"), "up: \(output)")
        #expect(try containers(name).isEmpty)
        #expect(sshdProcesses(name, 0).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: home.appendingPathComponent("clusters/\(name).json").path))
        #expect(!FileManager.default.fileExists(atPath: home.appendingPathComponent("local/\(name)-0").path))
    }

    /// Ctrl-C during `yonder-bench e2e`, once its cluster is up: the bench takes the cluster
    /// down (container, private sshd, its home) and exits with 130, rather than leaving them
    /// behind.
    @Test func interruptingTheBenchTakesItsClusterDown() async throws {
        let log = home.appendingPathComponent("bench.log").path
        let bench = try ChildProcess.spawn(
            RepositoryPaths.executable("yonder-bench").path, ["e2e", "--ups", "1", "--iterations", "100000", "--file-mib", "0"],
            environment: environment, output: log)
        let benchHome = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-bench-e2e-\(bench)")
        let sshdConfig = benchHome.appendingPathComponent("local/bench-e2e-0/sshd_config").path
        #expect(try await wait(for: "yonder.ping through the tunnel", in: log, pid: bench))
        #expect(try containers("bench-e2e") == ["yonder-bench-e2e-0"], "the bench's cluster is up")
        kill(bench, SIGINT)
        let status = exitCode(ChildProcess.wait(bench))
        let output = read(log)
        #expect(status == 130, "bench: \(output)")
        #expect(output.contains("interrupted; taking the cluster bench-e2e down"), "bench: \(output)")
        #expect(try containers("bench-e2e").isEmpty)
        let sshd = (try? ChildProcess.run("/usr/bin/pgrep", ["-f", sshdConfig])) ?? ""
        #expect(sshd.isEmpty, "the bench's sshd is still running: \(sshd)")
        #expect(!FileManager.default.fileExists(atPath: benchHome.path))
    }

    /// A container of a cluster this home does not record (its home removed, its run killed):
    /// `status` names it with what to run, and so does `down` of its cluster, which exits 1;
    /// a recorded cluster's container is not named, and `status --json` stays JSON.
    @Test func aContainerLeftWithoutItsRecordIsNamed() throws {
        let stray = "cs\(UInt16.random(in: 0...UInt16.max))"
        let container = "yonder-\(stray)-0"
        try ChildProcess.run("/usr/bin/env", ["docker", "run", "-d", "--name", container, "--label", "yonder.cluster=\(stray)", "yonder/debian:bookworm", "sleep", "600"])
        defer { _ = try? ChildProcess.run("/usr/bin/env", ["docker", "rm", "-f", container]) }
        let name = "cf\(UInt16.random(in: 0...UInt16.max))"
        #expect(try yonder("up", try writeSpec(name)).exitCode == 0)
        defer { _ = try? yonder("down", name) }

        let status = try yonder("status")
        #expect(status.exitCode == 0, "\(status.output)")
        #expect(status.output.contains("\(container) (cluster \(stray))") && status.output.contains("docker rm -f"), "status: \(status.output)")
        #expect(!status.output.contains("yonder-\(name)-0 (cluster"), "a recorded cluster's container is not stray: \(status.output)")
        let json = try yonder("status", "--json")
        #expect(json.exitCode == 0 && !json.output.contains(container), "\(json.output)")

        let down = try yonder("down", stray)
        #expect(down.exitCode == 1)
        #expect(down.output.contains("no cluster named \(stray)") && down.output.contains("docker rm -f \(container)"), "down: \(down.output)")
        #expect(try containers(stray) == [container], "down of an unrecorded cluster removes nothing")
    }

    /// `status NAME` exits 1 for a stopped container and says to run `yonder up NAME`, which
    /// (given a known cluster's name) brings it back; `exec` gives the command its input.
    @Test func statusOfABrokenNodeAndExecInput() throws {
        let name = "cf\(UInt16.random(in: 0...UInt16.max))"
        let spec = try writeSpec(name)
        #expect(try yonder("up", spec).exitCode == 0)
        defer { _ = try? yonder("down", name) }
        #expect(try yonder("status", name).exitCode == 0)

        let file = home.appendingPathComponent("input.txt").path
        let text = (0..<2000).map { "line \($0) of the input\n" }.joined()
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        var environment = environment
        environment["YONDER"] = RepositoryPaths.executable("yonder").path
        let cat = try ChildProcess.runCapturing("/bin/sh", ["-c", "\"$YONDER\" exec \(name) -- cat < \(file)"], environment: environment)
        #expect(cat.exitCode == 0 && cat.output == text, "exec printed \(cat.output.count) bytes: \(cat.output.prefix(200))")
        let none = try ChildProcess.runCapturing("/bin/sh", ["-c", "\"$YONDER\" exec -n \(name) -- wc -c < \(file)"], environment: environment)
        #expect(none.output.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(none.output)")

        try ChildProcess.run("/usr/bin/env", ["docker", "stop", "-t", "1", "yonder-\(name)-0"])
        let broken = try yonder("status", name)
        #expect(broken.exitCode == 1)
        #expect(broken.output.contains("yonder: node 0: the container is exited; run `yonder up \(name)`"), "status: \(broken.output)")
        let json = try yonder("status", name, "--json")
        #expect(json.exitCode == 1 && json.output.contains("\"containerState\" : \"exited\""), "\(json.output)")
        let again = try yonder("up", name)
        #expect(again.exitCode == 0, "\(again.output)")
        #expect(try yonder("status", name).exitCode == 0)

        // Its sshd is gone: unreachable, exit 1, and what to run.
        setenv("YONDER_HOME", home.path, 1)
        let sshd = try #require(try ClusterState.load(name).nodes[0].sshdProcessID)
        kill(sshd, SIGKILL)
        for _ in 0..<100 where kill(sshd, 0) == 0 { usleep(20_000) }
        let unreachable = try yonder("status", name)
        #expect(unreachable.exitCode == 1 && unreachable.output.contains("cannot be reached") && unreachable.output.contains("run `yonder up \(name)`"), "\(unreachable.output)")
    }

    /// A usage error is one line with where to read more, and exit status 1, as the README says.
    @Test func usageErrorsAreOneLine() throws {
        for arguments in [["up"], ["down", "x", "--bogus"], ["frobnicate"], ["exec", "x", "--node", "one", "--", "true"]] {
            let result = try ChildProcess.runCapturing(RepositoryPaths.executable("yonder").path, arguments, environment: environment)
            let lines = result.output.split(separator: "\n")
            #expect(result.exitCode == 1, "\(arguments): \(result.exitCode) \(result.output)")
            #expect(lines.count == 1 && lines[0].hasPrefix("yonder: ") && lines[0].contains("--help)"), "\(arguments): \(result.output)")
        }
        #expect(try yonder("up").output.contains("(see yonder up --help)"))
    }
}
