import Foundation
import Testing
import TestSupport
import YonderLocalServers
import YonderSSH

#if canImport(Glibc)
import Glibc
#endif

/// A server that dies or freezes mid-transfer yields `connectionLost`, never a hang.
@Suite(.serialized, .enabled(if: SSHServerFixture.shouldRun))
struct DeadPeerTests {
    let server: SSHServerFixture
    let echo: EchoServer
    init() throws {
        server = try SSHServerFixture()
        echo = try EchoServer()
    }

    /// Streams through a tunnel until `disrupt` runs after 8 MiB; returns the error the
    /// transfer ended with and how long after the disruption it came.
    private func transferUntilFailure(session: SSHSession, disrupt: @escaping @Sendable () -> Void) async throws -> (SSHError?, Duration) {
        let tunnel = try await session.openTunnel(host: "127.0.0.1", port: echo.port)
        let block = patternBytes(count: 256 << 10, seed: 3)
        let writer = Task {
            while true { try await tunnel.write(block) }
        }
        var received = 0
        var disruptedAt: ContinuousClock.Instant?
        var failure: SSHError?
        do {
            while true {
                guard let chunk = try await tunnel.read(maxLength: 1 << 20) else { break }
                received += chunk.count
                if disruptedAt == nil && received >= 8 << 20 {
                    disruptedAt = .now
                    disrupt()
                }
            }
        } catch let error as SSHError {
            failure = error
        }
        writer.cancel()
        _ = await writer.result
        return (failure, ContinuousClock.now - (disruptedAt ?? .now))
    }

    @Test func killedServerGivesConnectionLost() async throws {
        let session = try await SSHSession.connect(configuration(server, keepAlive: .seconds(1)))
        let server = server
        let (error, elapsed) = try await transferUntilFailure(session: session) { server.signalAll(SIGKILL) }
        #expect(error?.code == .connectionLost)
        #expect(elapsed < .seconds(3), "took \(elapsed)")
        // Everything on the session now fails the same way, at once.
        let after = await #expect(throws: SSHError.self) { try await session.run("true") }
        #expect(after?.code == .connectionLost)
    }

    @Test func frozenServerIsDetectedWithinTheKeepAliveBound() async throws {
        // Keep-alive every second, lost after 3 silent seconds.
        let session = try await SSHSession.connect(configuration(server, keepAlive: .seconds(1)))
        let server = server
        defer { server.signalAll(SIGCONT) }
        let (error, elapsed) = try await transferUntilFailure(session: session) { server.signalAll(SIGSTOP) }
        #expect(error?.code == .connectionLost)
        #expect(error?.description.contains("keep-alive") == true)
        #expect(elapsed < .seconds(6), "took \(elapsed)")
    }

    @Test func serverFrozenAfterLoginFailsTheNextCommandAndCloseReturns() async throws {
        let session = try await SSHSession.connect(configuration(server, keepAlive: .seconds(1)))
        // A channel open when the server freezes: freeing the session must not wait for the
        // server to confirm its close. (A tunnel, not a command: a shell frozen in its start-up
        // files, then killed, can leave their lock files behind.)
        let open = try await session.openTunnel(host: "127.0.0.1", port: echo.port)
        try await open.write([7])
        #expect(try await open.read(maxLength: 1) == [7])
        let server = server
        defer { server.signalAll(SIGCONT) }
        server.signalAll(SIGSTOP)
        let frozen = ContinuousClock.now
        let error = await #expect(throws: SSHError.self) { _ = try await session.run("true") }
        #expect(error?.code == .connectionLost, "\(String(describing: error))")
        #expect(ContinuousClock.now - frozen < .seconds(6), "took \(ContinuousClock.now - frozen)")
        let after = await #expect(throws: SSHError.self) { try await open.write([1]) }
        #expect(after?.code == .connectionLost, "\(String(describing: after))")
        let closing = ContinuousClock.now
        await session.close()
        #expect(ContinuousClock.now - closing < .seconds(1), "close took \(ContinuousClock.now - closing)")
        #expect(openClientSockets(toPort: server.port) == 0)
    }

    @Test func serverFrozenBeforeConnectTimesOutTheHandshake() async throws {
        let server = server
        defer { server.signalAll(SIGCONT) }
        server.signalAll(SIGSTOP)
        var frozen = configuration(server)
        frozen.connectTimeout = .milliseconds(300)
        for run in 1...5 {
            let error = await #expect(throws: SSHError.self) { _ = try await SSHSession.connect(frozen) }
            #expect(error?.code == .timedOut, "run \(run): \(String(describing: error))")
            #expect(openClientSockets(toPort: server.port) == 0, "run \(run)")
        }
        // Thawed, the same server is reachable again.
        server.signalAll(SIGCONT)
        let session = try await connect(server)
        let tunnel = try await session.openTunnel(host: "127.0.0.1", port: echo.port)
        try await tunnel.write([7])
        #expect(try await tunnel.read(maxLength: 1) == [7])
        await session.close()
    }
}
