#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CAgentSupport
import Synchronization
import YonderProtocol

/// `yonder.exec`: runs a command without a shell, streaming its output as `output` messages.
enum Exec {
    static let outputPieceSize = 64 * 1024

    static func run(_ value: JSONValue) async throws -> JSONValue {
        let arguments = try value.decode(as: BuiltinWire.ExecArguments.self, path: ["arguments"])
        guard let program = arguments.command.first, !program.isEmpty else {
            throw ProtocolError(.invalidArguments, "command must hold at least the program to run, e.g. [\"ls\", \"-l\"]", path: ["arguments", "command"])
        }
        var input: [UInt8] = []
        if let stdin = arguments.stdin {
            guard let data = Data(base64Encoded: stdin) else {
                throw ProtocolError(.decodeFailed, "stdin must be base64", path: ["arguments", "stdin"])
            }
            input = [UInt8](data)
        }
        if let cwd = arguments.cwd {
            var info = stat()
            guard stat(cwd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
                throw ProtocolError(.execFailed, "cannot run \(program): the working folder \(cwd) does not exist or is not a folder", path: ["arguments", "cwd"])
            }
        }
        var environment = ProcessInfo.processInfo.environment
        for (key, value) in arguments.env ?? [:] { environment[key] = value }

        let emit = RequestContext.current?.emit
        let holdBack = RequestContext.current?.holdBack
        let id = RequestContext.current?.id ?? 0
        let child = try ChildProcess.spawn(arguments.command, environment: environment, cwd: arguments.cwd, input: input) { stream, bytes in
            emit?(.output(Message.Output(id: id, stream: stream, data: bytes)))
            // A client that reads slowly pauses this reader, so the command's pipes fill and
            // the command waits, rather than its output piling up in the agent.
            holdBack?()
        }
        let status = await withTaskCancellationHandler {
            await child.waitForExit()
        } onCancel: {
            child.terminate()
        }
        try Task.checkCancellation()
        return try JSONValue(encoding: status)
    }
}

/// A spawned command: its pipes are read on a thread of its own until both close, then the
/// thread reaps the process. Output is handed over in pieces of at most 64 KiB.
final class ChildProcess: Sendable {
    let pid: pid_t
    private let exit = Mutex<(status: ExecStatus?, waiter: CheckedContinuation<ExecStatus, Never>?)>((nil, nil))

    private init(pid: pid_t) { self.pid = pid }

    static func spawn(
        _ command: [String], environment: [String: String], cwd: String?, input: [UInt8],
        output: @escaping @Sendable (Message.Output.Stream, [UInt8]) -> Void
    ) throws -> ChildProcess {
        var stdinPipe: [Int32] = [0, 0], stdoutPipe: [Int32] = [0, 0], stderrPipe: [Int32] = [0, 0]
        guard yonder_pipe_cloexec(&stdinPipe) == 0, yonder_pipe_cloexec(&stdoutPipe) == 0, yonder_pipe_cloexec(&stderrPipe) == 0 else {
            throw ProtocolError(.execFailed, "cannot make pipes for \(command[0]): \(errorText(errno))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
        if let cwd { yonder_spawn_add_chdir(&actions, cwd) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        SpawnDefaults.apply(to: &attributes)

        let argv = command.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        let (pid, rc) = withExtendedLifetime((argv, envp)) {
            OwnChildren.start { pid in posix_spawnp(&pid, command[0], &actions, &attributes, argv, envp) }
        }
        close(stdinPipe[0])
        close(stdoutPipe[1])
        close(stderrPipe[1])
        guard rc == 0 else {
            close(stdinPipe[1])
            close(stdoutPipe[0])
            close(stderrPipe[0])
            throw ProtocolError(.execFailed, "cannot run \(command[0]): \(errorText(rc))")
        }
        let child = ChildProcess(pid: pid)
        let stdinFD = stdinPipe[1], stdoutFD = stdoutPipe[0], stderrFD = stderrPipe[0]
        Thread.detach {
            Self.feed(input, to: stdinFD)
        }
        Thread.detach {
            Self.pump(stdout: stdoutFD, stderr: stderrFD, output: output)
            child.reap()
        }
        return child
    }

    private static func feed(_ input: [UInt8], to fd: Int32) {
        var offset = 0
        while offset < input.count {
            let written = input[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                break  // the command closed its stdin; the rest is not wanted
            }
            offset += written
        }
        close(fd)
    }

    private static func pump(stdout: Int32, stderr: Int32, output: @Sendable (Message.Output.Stream, [UInt8]) -> Void) {
        var fds = [pollfd(fd: stdout, events: Int16(POLLIN), revents: 0), pollfd(fd: stderr, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: Exec.outputPieceSize)
        var open = 2
        while open > 0 {
            let ready = poll(&fds, 2, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            for index in 0..<2 where fds[index].fd >= 0 && fds[index].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(fds[index].fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    output(index == 0 ? .stdout : .stderr, Array(buffer[0..<count]))
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(fds[index].fd)
                    fds[index].fd = -1
                    open -= 1
                }
            }
        }
    }

    private func reap() {
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        OwnChildren.reaped(pid)
        let status: ExecStatus
        if raw & 0x7f == 0 {
            status = ExecStatus(exitCode: Int((raw >> 8) & 0xff), signal: nil)
        } else {
            status = ExecStatus(exitCode: nil, signal: Int(raw & 0x7f))
        }
        let waiter = exit.withLock { state in
            state.status = status
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: status)
    }

    func waitForExit() async -> ExecStatus {
        await withCheckedContinuation { continuation in
            let done = exit.withLock { state -> ExecStatus? in
                if let status = state.status { return status }
                state.waiter = continuation
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// SIGTERM to the command's process group, then SIGKILL 2 seconds later if it still runs.
    func terminate() {
        let pid = self.pid
        kill(-pid, SIGTERM)
        Thread.detach { [self] in
            for _ in 0..<20 {
                usleep(100_000)
                if exit.withLock({ $0.status != nil }) { return }
            }
            kill(-pid, SIGKILL)
        }
    }
}
