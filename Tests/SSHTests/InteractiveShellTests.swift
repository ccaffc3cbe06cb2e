import Foundation
import Testing
import TestSupport
import YonderLocalServers
import YonderSSH

#if canImport(Glibc)
import Glibc
#endif

/// `interactiveShell` against a pseudo-terminal this test owns: the test types on the
/// master side as a person would on a terminal.
@Suite(.serialized, .enabled(if: SSHServerFixture.shouldRun))
struct InteractiveShellTests {
    let server: SSHServerFixture
    init() throws { server = try SSHServerFixture() }

    private struct PseudoTerminal {
        let master: Int32
        let slave: Int32

        init(columns: Int, rows: Int) throws {
            // posix_openpt and friends do not import into Swift; these are their Linux ioctls.
            master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
            var unlock: Int32 = 0
            var number: UInt32 = 0
            guard master >= 0, ioctl(master, 0x4004_5431 /* TIOCSPTLCK */, &unlock) == 0,
                ioctl(master, 0x8004_5430 /* TIOCGPTN */, &number) == 0
            else {
                throw RawFrameError("no pseudo-terminal")
            }
            slave = open("/dev/pts/\(number)", O_RDWR | O_NOCTTY)
            _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
            resize(columns: columns, rows: rows)
        }

        func resize(columns: Int, rows: Int) {
            var size = winsize(ws_row: UInt16(rows), ws_col: UInt16(columns), ws_xpixel: 0, ws_ypixel: 0)
            _ = ioctl(slave, UInt(TIOCSWINSZ), &size)
        }

        func type(_ text: String) {
            _ = Array(text.utf8).withUnsafeBytes { write(master, $0.baseAddress!, $0.count) }
        }

        /// Reads what the remote side printed until `marker` appears.
        func read(until marker: String, seen: inout String) async throws -> Bool {
            var buffer = [UInt8](repeating: 0, count: 4096)
            for _ in 0..<500 {
                let n = Glibc.read(master, &buffer, buffer.count)
                if n > 0 { seen += String(decoding: buffer[..<n], as: UTF8.self) }
                if seen.contains(marker) { return true }
                try await Task.sleep(for: .milliseconds(20))
            }
            return false
        }

        var localFlags: tcflag_t {
            var settings = termios()
            tcgetattr(slave, &settings)
            return settings.c_lflag
        }
    }

    @Test func shellSeesTheTerminalSizeFollowsResizesAndReturnsTheExitStatus() async throws {
        let session = try await connect(server)
        let terminal = try PseudoTerminal(columns: 111, rows: 33)
        let cookedFlags = terminal.localFlags
        #expect(cookedFlags & tcflag_t(ICANON) != 0)
        let slave = terminal.slave
        let shell = Task { try await session.interactiveShell(input: slave, output: slave, errorOutput: slave) }

        var seen = ""
        terminal.type("stty size; echo MARK$((20+1))\n")
        #expect(try await terminal.read(until: "MARK21", seen: &seen))
        #expect(seen.contains("33 111"))
        // In raw mode while the shell runs.
        #expect(terminal.localFlags & tcflag_t(ICANON) == 0)

        terminal.resize(columns: 120, rows: 40)
        kill(getpid(), SIGWINCH)
        try await Task.sleep(for: .milliseconds(300))
        seen = ""
        terminal.type("stty size; echo MARK$((30+1)); exit 3\n")
        #expect(try await terminal.read(until: "MARK31", seen: &seen))
        #expect(seen.contains("40 120"))

        let status = try await shell.value
        #expect(status == .exited(3))
        #expect(status.shellStatus == 3)
        // The local terminal is back as it was.
        #expect(terminal.localFlags == cookedFlags)
        await session.close()
    }

    @Test func aCommandWithoutATerminalStreamsPlainOutput() async throws {
        let session = try await connect(server)
        let pipeOut = Pipe()
        let devNull = open("/dev/null", O_RDONLY)
        defer { close(devNull) }
        let status = try await session.interactiveShell(
            command: "echo plain; test -t 0 || echo no-tty; exit 7", input: devNull,
            output: pipeOut.fileHandleForWriting.fileDescriptor, errorOutput: pipeOut.fileHandleForWriting.fileDescriptor)
        try pipeOut.fileHandleForWriting.close()
        let text = String(decoding: pipeOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(text == "plain\nno-tty\n")
        #expect(status == .exited(7))
        await session.close()
    }
}
