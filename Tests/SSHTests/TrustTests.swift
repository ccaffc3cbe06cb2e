import Foundation
import Testing
import TestSupport
import YonderLocalServers
import YonderSSH

/// Host keys and authentication.
@Suite(.serialized, .enabled(if: SSHServerFixture.shouldRun))
struct TrustTests {
    let server: SSHServerFixture
    init() throws { server = try SSHServerFixture() }

    private func file(_ name: String, _ text: String) throws -> String {
        let path = server.folder.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private func connectError(_ configuration: SSHConfiguration) async -> SSHError? {
        await #expect(throws: SSHError.self) { _ = try await SSHSession.connect(configuration) }
    }

    @Test func knownHostsMatchIsAccepted() async throws {
        let session = try await SSHSession.connect(configuration(server))
        #expect(session.hostKeyFingerprint == server.hostFingerprint)
        await session.close()
    }

    @Test func hashedKnownHostsEntryIsAccepted() async throws {
        let path = try file("hashed_known_hosts", try String(contentsOfFile: server.knownHosts, encoding: .utf8))
        try SSHServerFixture.runTool(SSHServerFixture.keygenPath, ["-H", "-f", path])
        #expect(!(try String(contentsOfFile: path, encoding: .utf8)).contains("127.0.0.1"))
        let session = try await SSHSession.connect(configuration(server, hostKeys: .knownHosts(path)))
        await session.close()
    }

    @Test func changedKeyIsRefusedWithTheFingerprint() async throws {
        try SSHServerFixture.runTool(SSHServerFixture.keygenPath, ["-q", "-N", "", "-t", "ed25519", "-f", server.folder.appendingPathComponent("other").path])
        let other = try String(contentsOf: server.folder.appendingPathComponent("other.pub"), encoding: .utf8)
        let path = try file("wrong_known_hosts", "[127.0.0.1]:\(server.port) \(other)")
        let error = await connectError(configuration(server, hostKeys: .knownHosts(path)))
        #expect(error?.code == .hostKeyChanged)
        #expect(error?.fingerprint == server.hostFingerprint)
        #expect(error?.description.contains(server.hostFingerprint) == true)
        #expect(error?.description.contains(path) == true)
        // Accept-new never overrides a changed key.
        let again = await connectError(configuration(server, hostKeys: .knownHosts(path, acceptNew: true)))
        #expect(again?.code == .hostKeyChanged)
    }

    @Test func unknownHostIsRefusedByDefaultAndRecordedWithAcceptNew() async throws {
        let path = server.folder.appendingPathComponent("fresh/known_hosts").path
        let error = await connectError(configuration(server, hostKeys: .knownHosts(path)))
        #expect(error?.code == .hostKeyUnknown)
        #expect(error?.description.contains(server.hostFingerprint) == true)
        #expect(!FileManager.default.fileExists(atPath: path))

        let session = try await SSHSession.connect(configuration(server, hostKeys: .knownHosts(path, acceptNew: true)))
        await session.close()
        let recorded = try String(contentsOfFile: path, encoding: .utf8)
        #expect(recorded.hasPrefix("[127.0.0.1]:\(server.port) ssh-ed25519 "))
        // OpenSSH reads what was recorded.
        let found = try SSHServerFixture.runTool(SSHServerFixture.keygenPath, ["-F", "[127.0.0.1]:\(server.port)", "-f", path])
        #expect(found.contains("ssh-ed25519"))
        // And now the strict policy accepts it.
        let strict = try await SSHSession.connect(configuration(server, hostKeys: .knownHosts(path)))
        await strict.close()
    }

    @Test func pinnedKeysAndFingerprints() async throws {
        let byFingerprint = try await SSHSession.connect(configuration(server, hostKeys: .pinned([server.hostFingerprint])))
        await byFingerprint.close()
        let byKey = try await SSHSession.connect(configuration(server, hostKeys: .pinned([server.hostPublicKey])))
        await byKey.close()
        let error = await connectError(configuration(server, hostKeys: .pinned(["SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"])))
        #expect(error?.code == .hostKeyChanged)
        #expect(error?.fingerprint == server.hostFingerprint)
    }

    @Test(arguments: ["ecdsa", "rsa"]) func keyTypes(kind: String) async throws {
        let key = kind == "ecdsa" ? server.ecdsaKey : server.rsaKey
        let session = try await SSHSession.connect(configuration(server, authentication: [.privateKey(path: key)]))
        #expect(try await session.run("echo \(kind)").stdoutText == "\(kind)\n")
        await session.close()
    }

    @Test func passphraseProtectedKey() async throws {
        let session = try await SSHSession.connect(configuration(server, authentication: [.privateKey(path: server.passphraseKey, passphrase: server.passphrase)]))
        await session.close()
        let wrong = await connectError(configuration(server, authentication: [.privateKey(path: server.passphraseKey, passphrase: "not it")]))
        #expect(wrong?.code == .authenticationFailed)
        #expect(wrong?.description.contains("wrong passphrase") == true)
        #expect(wrong?.description.contains("not it") == false)
    }

    @Test func wrongKeyIsRefusedAndTheErrorSaysWhatWasTried() async throws {
        let error = await connectError(configuration(server, authentication: [
            .privateKey(path: server.strangerKey), .privateKey(path: "/nonexistent/key"), .password("secret-pw"),
        ]))
        #expect(error?.code == .authenticationFailed)
        let text = error?.description ?? ""
        #expect(text.contains(server.strangerKey))
        #expect(text.contains("refused by the server"))
        #expect(text.contains("no such file"))
        #expect(text.contains("server does not offer password"))
        #expect(text.contains("publickey"))
        #expect(!text.contains("secret-pw"))
        // Falls through to a method that works.
        let session = try await SSHSession.connect(configuration(server, authentication: [
            .privateKey(path: server.strangerKey), .privateKey(path: server.clientKey),
        ]))
        await session.close()
    }

    @Test func agentAuthentication() async throws {
        let socket = server.folder.appendingPathComponent("agent.sock").path
        let agent = try ChildProcess.spawn("/usr/bin/ssh-agent", ["-D", "-a", socket])
        defer {
            kill(agent, SIGTERM)
            waitpid(agent, nil, 0)
        }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) { usleep(20_000) }
        setenv("SSH_AUTH_SOCK", socket, 1)
        defer { unsetenv("SSH_AUTH_SOCK") }
        try SSHServerFixture.runTool("/usr/bin/ssh-add", ["-q", server.ecdsaKey], environment: ["SSH_AUTH_SOCK": socket])
        let session = try await SSHSession.connect(configuration(server, authentication: [.agent]))
        #expect(try await session.run("echo agent").stdoutText == "agent\n")
        await session.close()
    }

    @Test func unreachableRefusedAndTimeouts() async throws {
        let closedPort = try LocalSSHServer.freePort()
        var config = configuration(server)
        config.port = closedPort
        #expect(await connectError(config)?.code == .refused)
        config.host = "no-such-host.invalid"
        #expect(await connectError(config)?.code == .unreachable)
        // A listener that never speaks SSH: the handshake times out.
        let silent = try EchoServer()
        config = configuration(server)
        config.port = silent.port
        config.connectTimeout = .milliseconds(500)
        let error = await connectError(config)
        #expect(error?.code == .timedOut || error?.code == .handshakeFailed)
    }
}
