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

        let badNode = try yonder("exec", name, "--node", "5", "--", "true")
        #expect(badNode.exitCode == 1)
        #expect(badNode.output.contains("has no node 5"))

        let down = try yonder("down", name)
        #expect(down.exitCode == 0)
        #expect(down.output.contains("cluster \(name) is down"))
        #expect(try yonder("status").output.contains("no clusters"))
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
