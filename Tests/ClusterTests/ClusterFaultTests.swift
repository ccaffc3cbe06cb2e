import Foundation
import QuickStartShared
import Synchronization
import Testing
import TestSupport
import Yonder
import YonderCluster
import YonderSSH
import YonderLocalServers

#if canImport(Glibc)
import Glibc
#endif

/// Breaking one thing at a time on a running `local` cluster: the agent restarted, killed or
/// stopped, its old port taken by another process, the SSH connection cut again and again.
@Suite(.serialized, .enabled(if: ClusterTestEnvironment.shouldRun))
struct ClusterFaultTests {
    let home: URL
    init() throws {
        home = try TestYonderHome.make()
    }

    /// A spec with the quick start's agent (it has `Counter`), else the plain one.
    func spec(_ name: String, image: String = ClusterTestEnvironment.image) -> ClusterSpec {
        let environment = ProcessInfo.processInfo.environment
        return ClusterSpec(name: name, image: image, agent: environment["YONDER_QUICKSTART_AGENT"] ?? environment["YONDER_STATIC_AGENT"])
    }

    static var hasCounter: Bool { ProcessInfo.processInfo.environment["YONDER_QUICKSTART_AGENT"] != nil }

    func docker(_ arguments: String...) throws -> String {
        try ChildProcess.run("/usr/bin/env", ["docker"] + arguments).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a test's body on `cluster`; if it throws, the cluster is closed and taken down
    /// before the error ends the test, so nothing is left behind.
    func removingOnFailure(_ name: String, _ cluster: Cluster, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            await cluster.close()
            _ = try? await Cluster.down(name)
            throw error
        }
    }

    /// Waits until `body` succeeds, for at most `limit`; returns how long it took.
    func within<T>(_ limit: Duration, _ body: () async throws -> T) async throws -> (T, Duration) {
        let start = ContinuousClock.now
        while true {
            do {
                return (try await body(), ContinuousClock.now - start)
            } catch {
                if ContinuousClock.now - start > limit { throw error }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    @Test func aRestartedAgentIsFoundAgainAndSaysWhichObjectsAreGone() async throws {
        try #require(Self.hasCounter, "needs YONDER_QUICKSTART_AGENT (scripts/test.sh sets it)")
        let name = "f\(UInt16.random(in: 0...UInt16.max))"
        let steps = ProgressSteps()
        let cluster = try await Cluster.up(spec(name)) { steps.add($0) }
        try await removingOnFailure(name, cluster) {
            let first = try await cluster.connection()
            let before = try #require(first.agent.instance)
            let counter = try await first.create(Counter.self, .init(start: 1), name: "c1")
            #expect(try await counter.increment(by: 1) == 2)

            _ = try docker("restart", "-t", "2", "yonder-\(name)-0")
            // No `up`: the next connection finds the agent's new port and token by itself.
            let (again, took) = try await within(.seconds(5)) { () async throws -> Connection in
                let connection = try await cluster.connection()
                _ = try await connection.ping()
                return connection
            }
            #expect(took < .seconds(5))
            #expect(again.agent.instance != before)
            let restarted = steps.all.filter { $0.step == "restarted" }
            #expect(restarted.count == 1)
            #expect(restarted.first?.detail.contains("c1") == true)
            // The object is gone, and says so.
            let gone = await #expect(throws: YonderError.self) { _ = try await again.lookup(Counter.self, named: "c1") }
            #expect(gone?.code == .unknownObject)

            // Another process attaches without `up`, and is not told twice.
            let attachedSteps = ProgressSteps()
            let attached = try await Cluster.attach(name) { attachedSteps.add($0) }
            #expect(try await attached.connection().ping() < .seconds(1))
            #expect(!attachedSteps.all.contains { $0.step == "restarted" })

            // Another process learns which objects are gone too: the names a closed cluster
            // had used are kept with the agent's instance.
            _ = try await attached.connection().create(Counter.self, .init(start: 0), name: "c2")
            await attached.close()
            _ = try docker("restart", "-t", "1", "yonder-\(name)-0")
            let laterSteps = ProgressSteps()
            let later = try await Cluster.attach(name) { laterSteps.add($0) }
            let reported = laterSteps.all.filter { $0.step == "restarted" }
            #expect(reported.count == 1 && reported.first?.detail.contains("c2") == true, "\(reported)")
            await later.close()
            await cluster.close()
            try await Cluster.down(name)
        }
    }

    @Test func orphansLeftByCommandsDoNotPileUpAsZombies() async throws {
        let name = "z\(UInt16.random(in: 0...UInt16.max))"
        let cluster = try await Cluster.up(spec(name))
        try await removingOnFailure(name, cluster) {
            let connection = try await cluster.connection()
            // Each shell leaves a sleeper behind; the sleepers' parent is then the agent (the
            // container's pid 1), which must wait for them once they end.
            for _ in 0..<5 {
                let result = try await connection.exec(["sh", "-c", "sleep 0.2 & exit 0"]).collect()
                #expect(result.status.succeeded)
            }
            let countZombies = """
                n=0; for f in /proc/[0-9]*/stat; do read -r line < "$f" 2>/dev/null || continue
                case "$line" in *") Z "*) n=$((n+1));; esac; done; echo $n
                """
            let (zombies, _) = try await within(.seconds(5)) {
                let text = try await connection.exec(["sh", "-c", countZombies]).collect().outputText
                let count = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
                guard count == 0 else { throw ClusterError(.agentFailed, "\(count) zombies in the container") }
                return count
            }
            #expect(zombies == 0)
            await cluster.close()
            try await Cluster.down(name)
        }
    }

    @Test func aKilledContainerOrAgentComesBack() async throws {
        let name = "f\(UInt16.random(in: 0...UInt16.max))"
        let cluster = try await Cluster.up(spec(name))
        let container = "yonder-\(name)-0"
        try await removingOnFailure(name, cluster) {

            // `docker kill`: Docker does not restart a container stopped by hand; the next
            // connect starts it again.
            _ = try docker("kill", container)
            let steps = ProgressSteps()
            let (attached, tookKill) = try await within(.seconds(5)) { try await Cluster.attach(name) { steps.add($0) } }
            #expect(tookKill < .seconds(5))
            #expect(steps.all.contains { $0.step == "start" && $0.detail.contains("started it again") })
            #expect(steps.all.contains { $0.step == "restarted" })
            #expect(try await attached.connection().ping() < .seconds(1))

            // The agent process killed: Docker's restart policy brings it back.
            let pid = try #require(pid_t(try docker("inspect", "--format", "{{.State.Pid}}", container)))
            #expect(kill(pid, SIGKILL) == 0)
            let (_, tookCrash) = try await within(.seconds(5)) { try await attached.connection().ping() }
            #expect(tookCrash < .seconds(5))
            await attached.close()
            await cluster.close()
            try await Cluster.down(name)
        }
    }

    @Test func aProcessOnAStalePortGetsNothingSecret() async throws {
        let name = "f\(UInt16.random(in: 0...UInt16.max))"
        let cluster = try await Cluster.up(spec(name))
        await cluster.close()
        try await removingOnFailure(name, cluster) {
            let container = "yonder-\(name)-0"
            let endpoint = try docker("exec", container, "cat", "/yonder/run/agent.json")
            let record = try #require(try JSONSerialization.jsonObject(with: Data(endpoint.utf8)) as? [String: Any])
            let token = try #require(record["token"] as? String)

            // Another process listens on a port and the agent's file points there, as a stale
            // file would after a restart whose agent has not written its new one yet.
            let impostor = try Impostor()
            defer { impostor.stop() }
            var stale = record
            stale["port"] = impostor.port
            let file = home.appendingPathComponent("stale.json")
            try JSONSerialization.data(withJSONObject: stale).write(to: file)
            _ = try docker("cp", file.path, "\(container):/yonder/run/agent.json")

            let refused = await #expect(throws: ClusterError.self) { _ = try await Cluster.attach(name, agentTimeout: .seconds(2)) }
            #expect(refused?.message.contains("is not the agent") == true)
            #expect(refused?.message.contains("yonder up") == true)
            #expect(refused?.message.contains(token) == false)
            let heard = impostor.received
            #expect(!heard.isEmpty, "the client did connect to the impostor")
            #expect(!String(decoding: heard, as: UTF8.self).contains(token))
            #expect(!String(decoding: heard, as: UTF8.self).contains("\"auth\""))

            // A restart writes a fresh token: the old one is worth nothing.
            _ = try docker("restart", "-t", "1", container)
            let (again, _) = try await within(.seconds(5)) { try await Cluster.attach(name) }
            let fresh = try docker("exec", container, "cat", "/yonder/run/agent.json")
            #expect(!fresh.contains(token))
            await again.close()
            try await Cluster.down(name)
        }
    }

    @Test func aNonRootImageWithAFailingEntrypointWorks() async throws {
        let image = "yonder-test/nonroot:latest"
        let context = home.appendingPathComponent("nonroot")
        try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
        try """
            FROM \(ClusterTestEnvironment.image)
            RUN echo 'echo noisy /etc/profile' >> /etc/profile && echo 'echo noisy bash.bashrc' >> /etc/bash.bashrc \\
                && echo 'echo noisy root bashrc' >> /root/.bashrc
            USER nobody
            WORKDIR /srv/missing-from-the-image
            ENTRYPOINT ["sh", "-c", "echo 'Welcome to the banner image'; exit 1"]
            """.write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
        _ = try ChildProcess.run("/usr/bin/env", ["docker", "build", "-q", "-t", image, context.path])
        let name = "f\(UInt16.random(in: 0...UInt16.max))"
        let cluster = try await Cluster.up(spec(name, image: image))
        let connection = try await cluster.connection()
        let who = try await connection.exec(["sh", "-c", "id -un; pwd; ls -ld /yonder/run | cut -d' ' -f3"]).collect()
        #expect(who.outputText == "nobody\n/srv/missing-from-the-image\nnobody\n")
        #expect(try await connection.info().pid == 1)
        // The CLI: a command and a shell inside run as the image's user; nothing of the
        // profile files gets into a command's output.
        var environment = ProcessInfo.processInfo.environment
        environment["YONDER_HOME"] = home.path
        let id = try ChildProcess.runCapturing(RepositoryPaths.executable("yonder").path, ["ssh", name, "--", "id", "-un"], environment: environment)
        #expect(id.exitCode == 0 && id.output == "nobody\n", "yonder ssh -- id printed: \(id.output)")
        let exec = try ChildProcess.runCapturing(RepositoryPaths.executable("yonder").path, ["exec", name, "-n", "--", "id", "-u"], environment: environment)
        #expect(exec.exitCode == 0 && exec.output == "65534\n", "yonder exec printed: \(exec.output)")
        await cluster.close()
        try await Cluster.down(name)
        #expect(try docker("ps", "-a", "--filter", "label=yonder.cluster=\(name)", "--format", "{{.Names}}").isEmpty)
    }

    /// A network blip: the node's SSH server serving the connection freezes for 3 s in the
    /// middle of a command that streams output; the command goes on and ends well.
    @Test func aShortBlipDoesNotFailARunningCommand() async throws {
        let name = "f\(UInt16.random(in: 0...UInt16.max))"
        let cluster = try await Cluster.up(spec(name))
        try await removingOnFailure(name, cluster) {
            let connection = try await cluster.connection()
            let config = home.appendingPathComponent("local/\(name)-0/sshd_config").path
            let listener = try #require(pid_t(try ChildProcess.run("/usr/bin/pgrep", ["-f", "-o", config]).trimmingCharacters(in: .whitespacesAndNewlines)))
            let freezer = Task {
                try await Task.sleep(for: .seconds(1))
                let serving = ChildProcess.descendants(of: listener)
                for pid in serving { kill(pid, SIGSTOP) }
                try await Task.sleep(for: .seconds(3))
                for pid in serving { kill(pid, SIGCONT) }
                return serving.count
            }
            let started = ContinuousClock.now
            let result = try await connection.exec(["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; sleep 0.5; done"]).collect()
            let frozen = try await freezer.value
            #expect(frozen > 0)
            #expect(result.outputText == (1...10).map { "\($0)\n" }.joined())
            #expect(ContinuousClock.now - started >= .seconds(5))
            #expect(try await cluster.connection() === connection, "the same connection, never dropped")
            await cluster.close()
            try await Cluster.down(name)
        }
    }

    /// The SSH connection cut every 2 s for 60 s under 8 calling tasks: every call ends with
    /// its answer or a connection-lost error, the counter holds every acknowledged increment
    /// (plus at most the ones whose answer was lost), and the client recovers each time.
    @Test func callsSurviveAConnectionCutAgainAndAgain() async throws {
        try #require(Self.hasCounter, "needs YONDER_QUICKSTART_AGENT (scripts/test.sh sets it)")
        let name = "f\(UInt16.random(in: 0...UInt16.max))"
        let cluster = try await Cluster.up(spec(name))
        try await removingOnFailure(name, cluster) {
            _ = try await cluster.connection().create(Counter.self, .init(start: 0), name: "total")
            let tally = Tally()
            let end = ContinuousClock.now + .seconds(60)
            let home = self.home
            let cutter = Task {
                var cuts = 0
                while ContinuousClock.now < end {
                    try? await Task.sleep(for: .seconds(2))
                    Self.dropConnections(of: name, home: home)
                    cuts += 1
                }
                return cuts
            }
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                                    var failedBefore = false
                        while ContinuousClock.now < end {
                            do {
                                let counter = try await cluster.connection().lookup(Counter.self, named: "total")
                                _ = try await counter.increment(by: 1)
                                tally.acknowledged.add(1, ordering: .relaxed)
                                if failedBefore { tally.recovered.add(1, ordering: .relaxed) }
                                failedBefore = false
                            } catch let error as YonderError where error.code == .connectionLost {
                                if error.operation?.hasPrefix("invoke") == true || error.message.contains("may or may not") { tally.lost.add(1, ordering: .relaxed) }
                                failedBefore = true
                            } catch {
                                tally.other.withLock { $0.append("\(error)") }
                                failedBefore = true
                                try? await Task.sleep(for: .milliseconds(200))
                            }
                        }
                    }
                }
            }
            let cuts = await cutter.value
            // The last cut may not be noticed yet: the first call after it can still fail.
            let (total, _) = try await within(.seconds(10)) {
                try await cluster.connection().lookup(Counter.self, named: "total").increment(by: 0)
            }
            let acked = tally.acknowledged.load(ordering: .relaxed)
            #expect(cuts >= 20)
            #expect(acked > 100)
            #expect(total >= acked && total <= acked + tally.lost.load(ordering: .relaxed), "counter \(total), acknowledged \(acked), lost \(tally.lost.load(ordering: .relaxed))")
            #expect(tally.recovered.load(ordering: .relaxed) >= 8, "the client recovered after a cut")
            #expect(tally.other.withLock { $0 }.isEmpty, "errors other than connection-lost: \(tally.other.withLock { $0.prefix(3) })")
            await cluster.close()
            try await Cluster.down(name)
            try await Task.sleep(for: .milliseconds(200))
            #expect(SSHSession.openCount == 0, "every SSH session was closed")
        }
    }

    static func dropConnections(of cluster: String, node: Int = 0, home: URL) {
        let config = home.appendingPathComponent("local/\(cluster)-\(node)/sshd_config").path
        let listener = (try? ChildProcess.run("/usr/bin/pgrep", ["-f", "-o", config]))
            .flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        for child in listener.map(ChildProcess.descendants(of:)) ?? [] { kill(child, SIGKILL) }
    }
}

/// What the calling tasks of the cut test count.
final class Tally: Sendable {
    let acknowledged = Atomic(0), lost = Atomic(0), recovered = Atomic(0), other = Mutex<[String]>([])
}

/// A process that listens on 127.0.0.1, records every byte a client sends, and answers the
/// first frame with a `hello` that carries no proof: what a process holding the agent's old
/// port could do.
final class Impostor: @unchecked Sendable {
    let port: Int
    /// The listening socket, -1 once the accepting thread has closed it; `stop` shuts it
    /// down under this lock, so it never reaches a number reused by another socket.
    private let listener: Locked<Int32>
    private let bytes: Store
    final class Store: Sendable { let value = Mutex<[UInt8]>([]) }
    private let thread: Thread

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw RawFrameError("the impostor cannot listen")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        let listener = Locked(fd)
        self.listener = listener
        let store = Store()
        bytes = store
        thread = Thread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    listener.withLock { open in
                        close(open)
                        open = -1
                    }
                    return
                }
                var buffer = [UInt8](repeating: 0, count: 65536)
                var answered = false
                while true {
                    let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                    if n <= 0 { break }
                    store.value.withLock { $0 += buffer[0..<n] }
                    if !answered {
                        answered = true
                        let hello = Array(#"{"type":"hello","protocol":2,"nonce":"AAAAAAAAAAAAAAAAAAAAAA==","name":"yonder-agent"}"#.utf8)
                        let frame = withUnsafeBytes(of: UInt32(hello.count).bigEndian, Array.init) + hello
                        _ = frame.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    }
                }
                close(client)
            }
        }
        thread.start()
    }

    var received: [UInt8] { bytes.value.withLock { $0 } }

    /// Stops listening; the accepting thread closes the listener.
    func stop() {
        listener.withLock { fd in
            if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
        }
    }
}
