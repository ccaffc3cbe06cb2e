import Foundation
import Testing
import TestSupport
import Yonder
import YonderCluster
import YonderLocalServers

#if canImport(Glibc)
import Glibc
#endif

/// A private registry (Debian's docker-registry with htpasswd on 127.0.0.1) holding the base
/// image: `up` pulls it with the right credentials and fails clearly with wrong ones.
@Suite(.serialized, .enabled(if: ClusterTestEnvironment.shouldRun))
struct RegistryTests {
    let folder: URL
    let port: Int
    let registry: pid_t
    let user = "yonder"
    let password = "registry-pass-123"

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-registry-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        setenv("YONDER_HOME", folder.appendingPathComponent("home").path, 1)
        let htpasswd = try ChildProcess.run("/usr/bin/htpasswd", ["-Bbn", user, password])
        try htpasswd.write(to: folder.appendingPathComponent("htpasswd"), atomically: true, encoding: .utf8)
        port = try LocalSSHServer.freePort()
        try """
            version: 0.1
            storage:
              filesystem:
                rootdirectory: \(folder.appendingPathComponent("data").path)
            http:
              addr: 127.0.0.1:\(port)
            auth:
              htpasswd:
                realm: yonder-test
                path: \(folder.appendingPathComponent("htpasswd").path)
            """.write(to: folder.appendingPathComponent("config.yml"), atomically: true, encoding: .utf8)
        registry = try ChildProcess.spawn("/usr/bin/docker-registry", ["serve", folder.appendingPathComponent("config.yml").path], output: folder.appendingPathComponent("registry.log").path)
        for _ in 0..<250 where !LocalSSHServer.canConnect(port: port) { usleep(20_000) }
    }

    @discardableResult
    func docker(_ arguments: [String], environment: [String: String]? = nil) throws -> String {
        try ChildProcess.run("/usr/bin/env", ["docker"] + arguments, environment: environment)
    }

    @Test func rightCredentialsPullAndWrongOnesFailCleanly() async throws {
        defer {
            kill(registry, SIGKILL)
            ChildProcess.wait(registry)
        }
        let image = "127.0.0.1:\(port)/yonder/private:test"
        // Push the base image, with the password on standard input.
        var environment = ProcessInfo.processInfo.environment
        environment["YONDER_TEST_PW"] = password
        try ChildProcess.run("/bin/sh", ["-c", "printf %s \"$YONDER_TEST_PW\" | docker login -u \(user) --password-stdin 127.0.0.1:\(port)"], environment: environment)
        // The base image plus a layer of its own, so that the pull downloads something.
        try ChildProcess.run("/bin/sh", ["-c", "printf 'FROM %s\\nRUN echo private > /private-marker\\n' \(ClusterTestEnvironment.image) | docker build -q -t \(image) -"])
        try docker(["push", image])
        try docker(["logout", "127.0.0.1:\(port)"])
        try docker(["rmi", image])

        let name = "r\(UInt16.random(in: 0...UInt16.max))"
        let spec = ClusterSpec(name: name, image: image, agent: ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"])
        let wrong = ProcessInfo.processInfo.environment.merging(["YONDER_DOCKER_USERNAME": user, "YONDER_DOCKER_PASSWORD": "not-the-password"]) { $1 }
        let error = await #expect(throws: ClusterError.self) { _ = try await Cluster.up(spec, environment: wrong) { _ in } }
        #expect(error?.code == .imageUnavailable)
        #expect(error?.description.contains("127.0.0.1:\(port)") == true)
        #expect(error?.description.contains("not-the-password") == false)
        #expect(try docker(["ps", "-a", "--filter", "label=yonder.cluster=\(name)", "--format", "{{.Names}}"]).isEmpty)
        #expect((try? ClusterState.load(name)) == nil)

        let right = ProcessInfo.processInfo.environment.merging(["SKYPILOT_DOCKER_USERNAME": user, "SKYPILOT_DOCKER_PASSWORD": password]) { $1 }
        let steps = ProgressSteps()
        let cluster = try await Cluster.up(spec, environment: right) { steps.add($0) }
        #expect(steps.all.contains { $0.step == "pull" })
        // Pull progress counts layers up to all of them, for the CLI's bar.
        let layers = steps.all.filter { $0.step == "pull" }.compactMap(\.fraction)
        #expect(layers.last.map { $0.done == $0.total && $0.total > 0 } == true, "pull progress: \(steps.all.filter { $0.step == "pull" }.map(\.detail))")
        #expect(steps.all.contains { $0.step == "pull" && $0.elapsed != nil && $0.detail.hasPrefix("pulled ") })
        #expect(try await cluster.connection().ping() < .seconds(1))
        #expect(try await cluster.connection().exec(["cat", "/private-marker"]).collect().outputText == "private\n")
        // No credential is left on the node, nor in Yonder's state.
        let dockerConfig = (try? String(contentsOfFile: NSHomeDirectory() + "/.docker/config.json", encoding: .utf8)) ?? ""
        #expect(!dockerConfig.contains("127.0.0.1:\(port)"))
        let state = try String(contentsOf: ClusterState.home.appendingPathComponent("clusters/\(name).json"), encoding: .utf8)
        #expect(!state.contains(password))
        try await cluster.down()
        _ = try? docker(["rmi", image])
    }

    /// `image_id: {build: …, push: REGISTRY/REPO}` on two nodes: node 0 builds once and pushes
    /// with the credentials, node 1 waits and builds nothing; wrong credentials fail the push
    /// clearly and leave nothing.
    @Test func anImageBuiltOnceIsPushedForTheOtherNodes() async throws {
        defer {
            kill(registry, SIGKILL)
            ChildProcess.wait(registry)
        }
        let name = "p\(UInt16.random(in: 0...UInt16.max))"
        let context = folder.appendingPathComponent("app")
        try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
        try "FROM \(ClusterTestEnvironment.image)\nRUN echo pushed > /pushed-marker\n".write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
        let specPath = folder.appendingPathComponent("\(name).yaml").path
        let repository = "127.0.0.1:\(port)/yonder/\(name)"
        try """
            name: \(name)
            num_nodes: 2
            image_id: {push: \(repository), build: app}
            agent: \(ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"] ?? "")
            """.write(toFile: specPath, atomically: true, encoding: .utf8)
        let spec = try ClusterSpec.load(from: specPath)
        #expect(spec.imageBuild?.push == repository)

        let wrong = ProcessInfo.processInfo.environment.merging(["YONDER_DOCKER_USERNAME": user, "YONDER_DOCKER_PASSWORD": "not-the-password"]) { $1 }
        let refused = await #expect(throws: ClusterError.self) { _ = try await Cluster.up(spec, environment: wrong) { _ in } }
        #expect(refused?.code == .imageUnavailable)
        #expect(refused?.description.contains("127.0.0.1:\(port)") == true && refused?.description.contains("not-the-password") == false, "\(String(describing: refused))")
        #expect(try docker(["ps", "-a", "--filter", "label=yonder.cluster=\(name)", "--format", "{{.Names}}"]).isEmpty)

        let right = ProcessInfo.processInfo.environment.merging(["YONDER_DOCKER_USERNAME": user, "YONDER_DOCKER_PASSWORD": password]) { $1 }
        let steps = ProgressSteps()
        let cluster = try await Cluster.up(spec, environment: right) { steps.add($0) }
        let tag = try #require(steps.all.first { $0.node == 0 && $0.step == "push" && $0.detail.hasPrefix("pushed ") }.map { String($0.detail.dropFirst("pushed ".count)) }, "\(steps.all.map(\.description))")
        #expect(tag.hasPrefix(repository + ":"))
        #expect(!steps.all.contains { $0.node == 1 && $0.step == "build" }, "node 1 builds nothing: \(steps.all.map(\.description))")
        #expect(steps.all.contains { $0.node == 1 && $0.detail == "waiting for node 0 to build and push \(tag)" })
        for node in 0..<2 {
            #expect(try await cluster.connection(node: node).exec(["cat", "/pushed-marker"]).collect().outputText == "pushed\n")
        }
        try await cluster.down()
        // What the registry holds is the image: pulled back from it, it has the marker.
        try docker(["rmi", "-f", tag])
        var environment = ProcessInfo.processInfo.environment
        environment["YONDER_TEST_PW"] = password
        try ChildProcess.run("/bin/sh", ["-c", "printf %s \"$YONDER_TEST_PW\" | docker login -u \(user) --password-stdin 127.0.0.1:\(port) >/dev/null && docker pull -q \(tag) >/dev/null && docker logout 127.0.0.1:\(port) >/dev/null"], environment: environment)
        #expect(try docker(["run", "--rm", tag, "cat", "/pushed-marker"]) == "pushed\n")
        _ = try? docker(["rmi", "-f", tag])
    }

    /// A registry that takes the connection and never answers: the pull (or the login before
    /// it) stalls, printing nothing. Cancelling `up` then stops the docker command on the node
    /// within seconds, with and without credentials; before, nothing it wrote met the closed
    /// channel, so it went on for as long as the registry kept silent.
    @Test(arguments: [false, true]) func cancellingAStalledPullStopsDockerOnTheNode(withLogin: Bool) async throws {
        defer {
            kill(registry, SIGKILL)
            ChildProcess.wait(registry)
        }
        let silent = try SilentListener(.acceptsAndStaysSilent)
        let image = "127.0.0.1:\(silent.port)/yonder/stalled:test"
        func dockerCommands() throws -> [String] {
            try ChildProcess.run("/usr/bin/env", ["ps", "-eo", "args"]).split(separator: "\n")
                .filter { $0.hasPrefix("docker ") && $0.contains("127.0.0.1:\(silent.port)") }.map(String.init)
        }
        defer {
            // Whatever the outcome, nothing of this test stays on the machine.
            _ = try? ChildProcess.run("/usr/bin/pkill", ["-KILL", "-f", "127.0.0.1:\(silent.port)"])
        }
        let before = loginFolders()
        let name = "r\(UInt16.random(in: 0...UInt16.max))"
        let spec = ClusterSpec(name: name, image: image, agent: ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"])
        var environment = ProcessInfo.processInfo.environment
        environment["YONDER_DOCKER_USERNAME"] = withLogin ? user : nil
        environment["YONDER_DOCKER_PASSWORD"] = withLogin ? password : nil
        environment["SKYPILOT_DOCKER_USERNAME"] = nil
        environment["SKYPILOT_DOCKER_PASSWORD"] = nil
        let up = CancellableUp { [environment] in try await Cluster.up(spec, environment: environment) { _ in } }
        // Cancelled once docker waits on the silent registry.
        guard try await up.wait(until: "a docker command reached the silent registry", every: .milliseconds(100), {
            try !dockerCommands().isEmpty && silent.connections > 0
        }) else { return }
        let waiting = try dockerCommands()
        #expect(waiting.contains { $0.contains(withLogin ? " login " : " pull ") }, "\(waiting)")
        up.task.cancel()
        await #expect(throws: (any Error).self) { try await up.task.value }

        let cancelled = ContinuousClock.now
        while try !dockerCommands().isEmpty, ContinuousClock.now - cancelled < .seconds(20) {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try dockerCommands().isEmpty, "docker still runs on the node after the cancel")
        #expect(loginFolders().subtracting(before).isEmpty)
        #expect(try docker(["ps", "-a", "--filter", "label=yonder.cluster=\(name)", "--format", "{{.Names}}"]).isEmpty)
        #expect((try? ClusterState.load(name)) == nil)
    }

    /// The private folders `up` makes for a registry login on the node (this machine).
    func loginFolders() -> Set<String> {
        var found: Set<String> = []
        let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"]
        for base in [runtime, "/dev/shm", ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"].compactMap({ $0 }) {
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where entry.hasPrefix("yonder-docker.") {
                found.insert("\(base)/\(entry)")
            }
        }
        return found
    }

    /// Ctrl-C (SIGINT to `yonder up`) during the pull from the private registry, and again
    /// once the container was made: no credential file or folder is left on the node, the
    /// user's own docker login is untouched, and no container, sshd or state is left.
    @Test func interruptingUpLeavesNoCredentialNorAnythingElse() async throws {
        defer {
            kill(registry, SIGKILL)
            ChildProcess.wait(registry)
        }
        let image = "127.0.0.1:\(port)/yonder/interrupted:test"
        var environment = ProcessInfo.processInfo.environment
        environment["YONDER_TEST_PW"] = password
        try ChildProcess.run("/bin/sh", ["-c", "printf %s \"$YONDER_TEST_PW\" | docker login -u \(user) --password-stdin 127.0.0.1:\(port)"], environment: environment)
        try ChildProcess.run("/bin/sh", ["-c", "printf 'FROM %s\\nRUN echo private > /private-marker\\n' \(ClusterTestEnvironment.image) | docker build -q -t \(image) -"])
        try docker(["push", image])
        try docker(["rmi", image])
        // The user stays logged in to the registry: up must leave that login alone.
        defer { _ = try? docker(["logout", "127.0.0.1:\(port)"]) }
        let dockerConfig = NSHomeDirectory() + "/.docker/config.json"
        #expect(try String(contentsOfFile: dockerConfig, encoding: .utf8).contains("127.0.0.1:\(port)"))
        let before = loginFolders()

        let name = "r\(UInt16.random(in: 0...UInt16.max))"
        let home = folder.appendingPathComponent("cli-home")
        let spec = folder.appendingPathComponent("spec.yaml").path
        try "name: \(name)\nimage_id: docker:\(image)\n".write(toFile: spec, atomically: true, encoding: .utf8)
        var cli = ProcessInfo.processInfo.environment
        cli["YONDER_HOME"] = home.path
        cli["YONDER_AGENT"] = cli["YONDER_STATIC_AGENT"]
        cli["YONDER_DOCKER_USERNAME"] = user
        cli["YONDER_DOCKER_PASSWORD"] = password
        func exitCode(_ status: Int32) -> Int32 { status & 0x7f != 0 ? 128 + (status & 0x7f) : (status >> 8) & 0xff }

        for (round, marker) in ["login: logged in to 127.0.0.1:\(port)", "container: creating yonder-\(name)-0"].enumerated() {
            _ = try? docker(["rmi", image])
            let log = folder.appendingPathComponent("up-\(round).log").path
            let up = try ChildProcess.spawn(RepositoryPaths.executable("yonder").path, ["up", spec], environment: cli, output: log)
            var seen = ""
            // Generous: other work on the machine can slow a pull down a lot.
            let deadline = ContinuousClock.now + .seconds(180)
            while !seen.contains(marker), ContinuousClock.now < deadline {
                if waitpid(up, nil, WNOHANG) == up { break }
                try await Task.sleep(for: .milliseconds(10))
                seen = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            }
            #expect(seen.contains(marker), "up printed: \(seen)")
            if round == 0 {
                // Mid-pull: the login is in a private folder in memory, not in the user's file.
                let made = loginFolders().subtracting(before)
                #expect(made.count == 1 && made.allSatisfy { !$0.hasPrefix("/tmp/") }, "login folders: \(made)")
                let mode = made.first.flatMap { try? FileManager.default.attributesOfItem(atPath: $0)[.posixPermissions] as? Int }
                #expect(mode == 0o700)
            }
            kill(up, SIGINT)
            let status = exitCode(ChildProcess.wait(up))
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(status == 130, "round \(round): \(output)")
            #expect(output.contains("was interrupted; what it made was removed"), "round \(round): \(output)")
            #expect(!output.contains(password))
            #expect(loginFolders().subtracting(before).isEmpty, "round \(round): login folders left: \(loginFolders().subtracting(before))")
            #expect(try String(contentsOfFile: dockerConfig, encoding: .utf8).contains("127.0.0.1:\(port)"), "the user's own login was removed")
            #expect(try docker(["ps", "-a", "--filter", "label=yonder.cluster=\(name)", "--format", "{{.Names}}"]).isEmpty)
            #expect((try? ChildProcess.run("/usr/bin/pgrep", ["-f", home.appendingPathComponent("local/\(name)-").path])) == nil)
            #expect(!FileManager.default.fileExists(atPath: home.appendingPathComponent("clusters/\(name).json").path))
        }
        _ = try? docker(["rmi", image])
    }
}
