public import Foundation
import YonderLocalServers
#if canImport(Glibc)
import Glibc
#endif

/// A Python server of the tests on a free loopback port, in its own process (not
/// Foundation's `Process`, whose wait for a Python server that was told to stop never
/// returned here), with its output discarded; stopped with SIGKILL.
final class LoopbackPythonServer: @unchecked Sendable {
    // Safe: every stored property is set in init and then only read.
    let port: Int
    private let pid: pid_t
    private let stopped = Locked(false)

    /// Runs `python3 ARGUMENTS…`, where `arguments` gets the port, and waits until it listens.
    init(_ what: String, environment: [String: String] = ProcessInfo.processInfo.environment, arguments: (Int) -> [String]) throws {
        port = try LocalSSHServer.freePort()
        pid = try ChildProcess.spawn("/usr/bin/env", ["python3"] + arguments(port), environment: environment, output: "/dev/null")
        let deadline = Date().addingTimeInterval(30)
        while !LocalSSHServer.canConnect(port: port) {
            guard kill(pid, 0) == 0, Date() < deadline else {
                stop()
                throw RawFrameError("\(what) did not start listening on 127.0.0.1:\(port) within 30 s")
            }
            usleep(50_000)
        }
    }

    deinit { stop() }

    func stop() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        kill(pid, SIGKILL)
        _ = ChildProcess.wait(pid)
    }
}

/// `moto_server`, the AWS emulator from PyPI's `moto[server]`, on a free loopback port, for
/// the AWS tests. Each instance is a fresh, empty emulator.
public final class MotoServer: Sendable {
    /// Its address, e.g. `http://127.0.0.1:41234`.
    public let endpoint: URL
    private let server: LoopbackPythonServer

    /// Starts one; nil (with a message) when `moto_server` is not installed outside CI.
    /// Under CI a missing emulator is an error.
    /// `settings`: moto's own environment variables, e.g.
    /// `MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION`, so that it refuses what AWS refuses.
    public static func start(settings: [String: String] = [:]) throws -> MotoServer? {
        guard Self.installed() else {
            let message = "moto is not installed; scripts/setup.sh installs it (pip install 'moto[server]')"
            if runningUnderCI { throw RawFrameError(message) }
            print("skipped: \(message)")
            return nil
        }
        return try MotoServer(settings: settings)
    }

    /// Whether `python3 -m moto.server` can run.
    private static func installed() -> Bool {
        (try? ChildProcess.runCapturing("/usr/bin/env", ["python3", "-c", "import moto.server, flask"]))?.exitCode == 0
    }

    private init(settings: [String: String]) throws {
        server = try LoopbackPythonServer("moto_server", environment: ProcessInfo.processInfo.environment.merging(settings) { $1 }) { port in
            ["-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)]
        }
        endpoint = URL(string: "http://127.0.0.1:\(server.port)")!
    }

    /// Stops the emulator.
    public func stop() { server.stop() }

    /// Environment variables that point AWS clients at this emulator, with fake credentials.
    public var environment: [String: String] {
        [
            "AWS_ENDPOINT_URL": endpoint.absoluteString, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        ]
    }
}

/// A named fake in front of a `MotoServer`: EC2's RunInstances fails as AWS does when it has
/// no capacity or a quota is reached, which moto never does (Tests/AWSTests/ec2_fault_proxy.py
/// says what each rule does). Everything else reaches moto unchanged.
public final class EC2FaultProxy: Sendable {
    private let moto: MotoServer
    private let server: LoopbackPythonServer

    /// Starts a proxy to `moto` with `rule` (`capacity-only-in:ZONE`, `vcpu-limit`,
    /// `capacity-then-vcpu-limit`).
    public init(_ moto: MotoServer, rule: String) throws {
        self.moto = moto
        let script = RepositoryPaths.root.appendingPathComponent("Tests/AWSTests/ec2_fault_proxy.py").path
        server = try LoopbackPythonServer("the EC2 fault proxy") { port in [script, String(port), moto.endpoint.absoluteString, rule] }
    }

    /// The emulator's environment with EC2 sent through the proxy.
    public var environment: [String: String] {
        moto.environment.merging(["AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:\(server.port)"]) { $1 }
    }

    /// Stops the proxy.
    public func stop() { server.stop() }
}
