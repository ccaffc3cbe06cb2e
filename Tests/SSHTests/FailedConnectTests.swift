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

/// A TCP listener on 127.0.0.1 that takes connections and never completes an SSH handshake.
final class SilentListener: Sendable {
    enum Behaviour: String, CaseIterable, Sendable, CustomTestStringConvertible {
        /// Listens but never calls accept (the kernel completes the TCP handshake), as a
        /// stopped sshd does.
        case neverAccepts
        /// Accepts and keeps the connection open without sending a byte.
        case acceptsAndStaysSilent
        /// Accepts and sends an SSH banner, then nothing (the key exchange never starts).
        case sendsBannerThenStaysSilent

        var testDescription: String { rawValue }
    }

    let port: Int
    private let behaviour: Behaviour
    private let fd: Int32
    private let state = State()
    private final class State: @unchecked Sendable {
        // Safe: every member is behind `lock`, but `ended`, which is thread-safe.
        let lock = NSLock()
        var accepted: [Int32] = []
        var stopped = false
        let ended = DispatchSemaphore(value: 0)
    }

    init(_ behaviour: Behaviour) throws {
        self.behaviour = behaviour
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SilentListenerError("socket() failed") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        // The backlog holds every connection of a test when nothing accepts them.
        guard bound, listen(fd, 256) == 0 else {
            close(fd)
            throw SilentListenerError("cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))")
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
        let state = state
        guard behaviour != .neverAccepts else {
            state.ended.signal()
            return
        }
        let thread = Thread { [fd, behaviour, state] in
            defer { state.ended.signal() }
            while true {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                _ = poll(&pfd, 1, 20)
                if state.lock.withLock({ state.stopped }) { return }
                guard pfd.revents & Int16(POLLIN) != 0 else { continue }
                let client = accept(fd, nil, nil)
                guard client >= 0 else { continue }
                if behaviour == .sendsBannerThenStaysSilent {
                    let banner = Array("SSH-2.0-OpenSSH_9.2p1 Silent\r\n".utf8)
                    _ = banner.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                }
                state.lock.withLock { state.accepted.append(client) }
            }
        }
        thread.start()
    }

    /// Connections taken so far (for `neverAccepts`, those waiting in the backlog).
    var connections: Int {
        if behaviour == .neverAccepts {
            // Accept what the kernel queued, to count it.
            while true {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, 0) == 1 else { break }
                let client = accept(fd, nil, nil)
                guard client >= 0 else { break }
                state.lock.withLock { state.accepted.append(client) }
            }
        }
        return state.lock.withLock { state.accepted.count }
    }

    deinit {
        state.lock.withLock { state.stopped = true }
        state.ended.wait()
        for client in state.accepted { close(client) }
        close(fd)
    }
}

struct SilentListenerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
