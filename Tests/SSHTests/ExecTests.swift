import Foundation
import Testing
import TestSupport
import YonderSSH

@Suite(.serialized, .enabled(if: SSHServerFixture.shouldRun))
struct ExecTests {
    let server: SSHServerFixture
    init() throws { server = try SSHServerFixture() }

    @Test func exitCodesAndOutput() async throws {
        let session = try await connect(server)
        let ok = try await session.run("echo hello; echo oops >&2")
        #expect(ok.status == .exited(0))
        #expect(ok.stdoutText == "hello\n")
        #expect(ok.stderrText == "oops\n")
        let failed = try await session.run("exit 42")
        #expect(failed.status == .exited(42))
        let killed = try await session.run("kill -TERM $$")
        #expect(killed.status == .signaled("TERM"))
        #expect(killed.status.shellStatus == 143)
        #expect(session.cipher == "aes128-ctr")
        await session.close()
    }

    @Test func standardInputReachesTheCommand() async throws {
        let session = try await connect(server)
        let input = patternBytes(count: 8 << 20, seed: 7)
        let echoed = try await session.run("cat", input: input)
        #expect(echoed.stdout.count == input.count)
        #expect(echoed.stdout == input)
        #expect(echoed.status == .exited(0))
        let counted = try await session.run("wc -c", input: input)
        #expect(counted.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines) == "\(8 << 20)")
        await session.close()
    }

    @Test func hundredMegabytesOfOutput() async throws {
        let session = try await connect(server)
        let command = try await session.execute("head -c 104857600 /dev/zero; echo done >&2")
        async let errors = command.stderr.collect()
        var zeros = PatternVerifier(block: [UInt8](repeating: 0, count: 1 << 20))
        for try await chunk in command.stdout { zeros.add(chunk) }
        #expect(zeros.count == 100 << 20)
        #expect(zeros.mismatchAt == nil)
        #expect(String(decoding: try await errors, as: UTF8.self) == "done\n")
        #expect(try await command.exitStatus() == .exited(0))
        await session.close()
    }

    @Test func aCommandThatNeverReadsStdinDoesNotDeadlock() async throws {
        let session = try await connect(server)
        let command = try await session.execute("sleep 0.2; echo finished")
        // Far more than the channel window: the writer must give up when the command ends.
        let writer = Task { try await command.write([UInt8](repeating: 1, count: 64 << 20)) }
        let output = try await command.stdout.collect()
        #expect(String(decoding: output, as: UTF8.self) == "finished\n")
        #expect(try await command.exitStatus() == .exited(0))
        let error = await #expect(throws: SSHError.self) { try await writer.value }
        #expect(error?.code == .closed)
        await session.close()
    }

    @Test func manyCommandsAtOnceOnOneSession() async throws {
        let session = try await connect(server)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<20 {
                group.addTask {
                    let result = try await session.run("echo \(index); exit \(index % 7)")
                    #expect(result.stdoutText == "\(index)\n")
                    #expect(result.status == .exited(Int32(index % 7)))
                }
            }
            try await group.waitForAll()
        }
        await session.close()
    }

    @Test func cancellingAWaitClosesTheChannel() async throws {
        let session = try await connect(server)
        let command = try await session.execute("echo started; sleep 30")
        // Cancel once the command runs (not while the shell reads its start-up files).
        #expect(try await command.stdout.read() == Array("started\n".utf8))
        let waiter = Task { try await command.exitStatus() }
        try await Task.sleep(for: .milliseconds(100))
        waiter.cancel()
        let error = await #expect(throws: SSHError.self) { try await waiter.value }
        #expect(error?.code == .cancelled)
        // The session still works.
        #expect(try await session.run("echo alive").stdoutText == "alive\n")
        await session.close()
    }

    @Test func terminalHasTheRequestedSize() async throws {
        let session = try await connect(server)
        let result = try await session.run("stty size; echo $TERM", pty: PTYRequest(term: "xterm-256color", columns: 132, rows: 43))
        #expect(result.stdoutText.replacingOccurrences(of: "\r", with: "") == "43 132\nxterm-256color\n")
        let shell = try await session.execute("read line; stty size", pty: PTYRequest(columns: 80, rows: 24))
        try await shell.resize(columns: 100, rows: 30)
        try await Task.sleep(for: .milliseconds(100))
        try await shell.write(Array("go\n".utf8))
        let output = String(decoding: try await shell.stdout.collect(), as: UTF8.self)
        #expect(output.contains("30 100"))
        await session.close()
    }
}
