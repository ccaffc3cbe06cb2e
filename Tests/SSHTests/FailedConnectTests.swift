import Foundation
import Testing
import TestSupport
import YonderSSH

#if canImport(Glibc)
import Glibc
#endif

/// Connecting to something that takes the TCP connection but never completes an SSH
/// handshake ends in a `timedOut` error, every time, and by the time the error arrives the
/// session is gone (its socket closed, libssh2 done with it), so nothing is left running
/// that could crash a process that exits on the error, as the CLI does.
@Suite(.serialized)
struct FailedConnectTests {
    static let runs = 50

    @Test(arguments: SilentListener.Behaviour.allCases)
    func handshakeTimesOutAndLeavesNothingRunning(behaviour: SilentListener.Behaviour) async throws {
        let listener = try SilentListener(behaviour)
        let started = ContinuousClock.now
        for run in 1...Self.runs {
            let error = await #expect(throws: SSHError.self, "run \(run)") {
                _ = try await SSHSession.connect(silentConfiguration(port: listener.port))
            }
            #expect(error?.code == .timedOut, "run \(run): \(String(describing: error))")
            #expect(error?.description.contains("SSH handshake") == true, "run \(run): \(String(describing: error))")
            // The session's socket is closed before connect returns, not some time later.
            #expect(openClientSockets(toPort: listener.port) == 0, "run \(run)")
        }
        #expect(listener.connections == Self.runs)
        // Each run ends near its 100 ms bound: the loop wakes up for the deadline, and no run
        // waits for a goodbye that the server never reads.
        let elapsed = ContinuousClock.now - started
        #expect(elapsed < .milliseconds(300) * Self.runs, "took \(elapsed)")
    }

    /// A process that exits as soon as connect fails (the CLI prints the error and exits)
    /// must never crash on the way out: before connect waited for the session's thread to end,
    /// that thread was still in libcrypto while `exit` ran OpenSSL's clean-up, and about one
    /// run in 16 died with SIGSEGV.
    @Test func processExitingRightAfterTheTimeoutNeverCrashes() async throws {
        let probe = RepositoryPaths.executable("yonder-ssh-probe")
        try #require(FileManager.default.isExecutableFile(atPath: probe.path), "build the package's executables first (swift build --build-tests)")
        let listener = try SilentListener(.acceptsAndStaysSilent)
        for run in 1...Self.runs {
            let (status, reason, output, errors) = try runProbe(probe, port: listener.port)
            let ended = reason == .uncaughtSignal ? "killed by signal \(status)" : "exit status \(status)"
            #expect(reason == .exit && status == 1 && output == "timedOut\n",
                    "run \(run): \(ended), printed \(output.debugDescription); standard error:\n\(errors.suffix(4000))")
            if reason != .exit || status != 1 { break }
        }
    }
}

/// A configuration that gives up after 100 ms.
func silentConfiguration(port: Int) -> SSHConfiguration {
    SSHConfiguration(
        host: "127.0.0.1", port: port, user: "nobody", authentication: [.password("unused")],
        hostKeys: .pinned(["SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]),
        connectTimeout: .milliseconds(100), keepAliveInterval: nil, requestInteractiveMode: false)
}

/// Runs `yonder-ssh-probe` once against 127.0.0.1:`port` with a 100 ms timeout; returns how
/// it ended and what it printed on standard output and standard error.
private func runProbe(_ probe: URL, port: Int) throws -> (Int32, Process.TerminationReason, String, String) {
    let process = Process()
    process.executableURL = probe
    process.arguments = ["127.0.0.1", String(port), "100"]
    let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-ssh-probe-\(UUID().uuidString).err")
    guard FileManager.default.createFile(atPath: errorFile.path, contents: nil) else {
        throw SilentListenerError("cannot create \(errorFile.path)")
    }
    defer { try? FileManager.default.removeItem(at: errorFile) }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = try FileHandle(forWritingTo: errorFile)
    try process.run()
    let printed = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let errors = (try? String(contentsOf: errorFile, encoding: .utf8)) ?? ""
    return (process.terminationStatus, process.terminationReason, String(decoding: printed, as: UTF8.self), errors)
}

/// How many TCP sockets to 127.0.0.1:`port` are still open (in any process: a socket its
/// owner has closed no longer has an inode in /proc/net/tcp).
func openClientSockets(toPort port: Int) -> Int {
    guard let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) else { return 0 }
    let remote = String(format: "0100007F:%04X", port)
    return table.split(separator: "\n").dropFirst().filter { line in
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        return fields.count > 9 && fields[2] == remote && fields[9] != "0"
    }.count
}
