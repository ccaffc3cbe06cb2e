import Foundation
import Testing
import TestSupport
import YonderSSH
#if canImport(Glibc)
import Glibc
#endif

/// Sessions through a proxy command, as through a jump host: here OpenSSH's own
/// `ssh -W %h:%p`, jumping through the same sshd to reach it again.
@Suite(.serialized, .enabled(if: SSHServerFixture.shouldRun))
struct ProxyCommandTests {
    let server: SSHServerFixture
    init() throws { server = try SSHServerFixture() }

    /// The jump: `ssh -W` to the target's address, marked so the test can find it.
    func jump(marker: String) -> String {
        server.jumpCommand(to: "%h:%p", marker: marker)
    }

    /// Processes whose command line holds `marker`.
    static func processes(marked marker: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { Int($0) != nil }.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: data, as: UTF8.self).contains(marker)
        }
    }

    /// Zombie children of this process whose command is `name` (other tests in this process
    /// have children of their own, reaped on their own schedule).
    static func zombieChildren(named name: String) -> Int {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.filter { Int($0) != nil }.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            guard let open = stat.firstIndex(of: "("), stat[stat.index(after: open)..<close] == name else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && fields[0] == "Z" && Int32(fields[1]) == getpid()
        }.count
    }

    @Test func aSessionRunsThroughAJumpHostAndItsProxyEndsWithIt() async throws {
        let marker = "yonder-jump-\(UUID().uuidString.prefix(8))"
        var settings = configuration(server)
        settings.proxyCommand = jump(marker: marker)
        let session = try await SSHSession.connect(settings)
        #expect(Self.processes(marked: marker).count == 1)
        let result = try await session.run("echo through the jump")
        #expect(result.stdoutText == "through the jump\n")
        // The target's host key is checked as on a direct connection.
        #expect(session.hostKeyFingerprint == server.hostFingerprint)
        await session.close()
        for _ in 0..<100 where !Self.processes(marked: marker).isEmpty { try await Task.sleep(for: .milliseconds(50)) }
        #expect(Self.processes(marked: marker).isEmpty)
        // The proxy (an exec'd ssh) is reaped by a thread of its own, soon after the close.
        for _ in 0..<100 where Self.zombieChildren(named: "ssh") > 0 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(Self.zombieChildren(named: "ssh") == 0)
    }

    @Test func aProxyCommandThatFailsIsAClearErrorNotAHang() async throws {
        var settings = configuration(server)
        settings.proxyCommand = "echo 'no route to %h' >&2; exit 3"
        settings.connectTimeout = .seconds(20)
        let start = ContinuousClock.now
        let failing = settings
        let error = await #expect(throws: SSHError.self) { try await SSHSession.connect(failing) }
        #expect(ContinuousClock.now - start < .seconds(15))
        #expect(error?.message.contains("proxy command") == true)
        // A wrong host key through the proxy is refused as it would be directly.
        var wrongKey = configuration(server)
        wrongKey.proxyCommand = jump(marker: "unused")
        wrongKey.hostKeys = .pinned(["SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"])
        let refused = wrongKey
        let mismatch = await #expect(throws: SSHError.self) { try await SSHSession.connect(refused) }
        #expect(mismatch?.code == .hostKeyChanged)
    }

    @Test func tokensAreExpandedAndQuotedForTheShell() async throws {
        let record = server.folder.appendingPathComponent("proxy-arguments").path
        var settings = configuration(server)
        settings.host = "odd host;touch \(record).injected"
        settings.proxyCommand = "printf '%s\\n' %h %p %r %% > \(record); exit 1"
        let recording = settings
        await #expect(throws: SSHError.self) { try await SSHSession.connect(recording) }
        let lines = try String(contentsOfFile: record, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines == [settings.host, String(settings.port), settings.user, "%"])
        #expect(!FileManager.default.fileExists(atPath: record + ".injected"))
    }
}
