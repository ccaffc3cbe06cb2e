public import Foundation
import YonderLocalServers
#if canImport(Glibc)
import Glibc
#endif

/// `moto_server`, the AWS emulator from PyPI's `moto[server]`, on a free loopback port, for
/// the AWS tests. Each instance is a fresh, empty emulator.
public final class MotoServer: @unchecked Sendable {
    // Safe: every stored property is set in init and then only read.
    /// Its address, e.g. `http://127.0.0.1:41234`.
    public let endpoint: URL
    private let pid: pid_t
    private let stopped = Locked(false)

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
        let port = try LocalSSHServer.freePort()
        // Its own process (not Foundation's `Process`, whose wait for a Python server that
        // was told to stop never returned here), with its output discarded.
        pid = try ChildProcess.spawn(
            "/usr/bin/env", ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)],
            environment: ProcessInfo.processInfo.environment.merging(settings) { $1 }, output: "/dev/null")
        endpoint = URL(string: "http://127.0.0.1:\(port)")!
        let deadline = Date().addingTimeInterval(30)
        while !LocalSSHServer.canConnect(port: port) {
            guard kill(pid, 0) == 0, Date() < deadline else {
                stop()
                throw RawFrameError("moto_server did not start listening on 127.0.0.1:\(port) within 30 s")
            }
            usleep(100_000)
        }
    }

    deinit { stop() }

    /// Stops the emulator.
    public func stop() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        kill(pid, SIGKILL)
        _ = ChildProcess.wait(pid)
    }

    /// Environment variables that point AWS clients at this emulator, with fake credentials.
    public var environment: [String: String] {
        [
            "AWS_ENDPOINT_URL": endpoint.absoluteString, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        ]
    }
}
