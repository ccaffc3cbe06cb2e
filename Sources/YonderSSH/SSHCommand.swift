import Synchronization
internal import CLibSSH2

/// A terminal to request for a command or shell.
public struct PTYRequest: Sendable, Equatable {
    /// The terminal type the remote side sees in `TERM`.
    public var term: String
    /// Width in character cells.
    public var columns: Int
    /// Height in character cells.
    public var rows: Int

    /// A terminal of the given type and size.
    public init(term: String = "xterm-256color", columns: Int = 80, rows: Int = 24) {
        self.term = term
        self.columns = columns
        self.rows = rows
    }
}

/// The collected result of a command run with ``SSHSession/run(_:input:environment:pty:)``.
public struct SSHCommandResult: Sendable {
    /// How the command ended.
    public var status: SSHExitStatus
    /// Everything it wrote to standard output.
    public var stdout: [UInt8]
    /// Everything it wrote to standard error.
    public var stderr: [UInt8]

    /// Standard output as UTF-8 text.
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    /// Standard error as UTF-8 text.
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// A command running on the server.
///
/// Read ``stdout`` and ``stderr`` while it runs; each buffers up to 1 MiB, and a full
/// buffer makes the server wait, so read both (concurrently) until they end. Write to its
/// standard input with ``write(_:)`` and end it with ``closeInput()``. ``exitStatus()`` waits
/// for the end. Cancelling a task that waits on it, or calling ``cancel()``, closes the channel.
public final class SSHCommand: Sendable {
    let core: ChannelCore
    /// The session the command runs on (kept alive while the command is).
    public let session: SSHSession
    /// The command line, as sent.
    public let command: String
    /// Its standard output.
    public let stdout: SSHOutputStream
    /// Its standard error (empty when it runs on a terminal, which merges both).
    public let stderr: SSHOutputStream

    init(core: ChannelCore, session: SSHSession, command: String) {
        self.core = core
        self.session = session
        self.command = command
        self.stdout = SSHOutputStream(core: core, session: session, stream: 0)
        self.stderr = SSHOutputStream(core: core, session: session, stream: 1)
    }

    deinit {
        let core = core
        session.onLoop { loop in core.close(reason: SSHError.closed(core.label), loop: loop) }
    }

    /// Writes `bytes` to the command's standard input; returns once libssh2 has taken them
    /// (the server's window may hold them back while the command does not read).
    public func write(_ bytes: [UInt8]) async throws {
        let core = core
        try await session.withChannelCancellation(core) {
            try await self.session.onLoop { loop, resume in core.write(.bytes(bytes), stream: 0, loop: loop, resume: resume) }
        }
    }

    /// Sends end-of-file on standard input after what was written.
    public func closeInput() async {
        let core = core
        session.onLoop { loop in core.closeInput(loop: loop) }
    }

    /// Waits for the command to end.
    public func exitStatus() async throws -> SSHExitStatus {
        let core = core
        return try await session.withChannelCancellation(core) {
            try await self.session.onLoop { _, resume in core.waitForExit(resume) }
        }
    }

    /// Tells the remote terminal its new size (commands started with a PTY only).
    public func resize(columns: Int, rows: Int) async throws {
        let core = core
        try await session.onLoop { (loop, resume: @escaping (Result<Void, SSHError>) -> Void) in
            if let error = core.resizePTY(columns: columns, rows: rows, loop: loop) {
                resume(.failure(error))
            } else {
                resume(.success(()))
            }
        }
    }

    /// Closes the channel; the server hangs up the command. Pending reads and writes fail.
    public func cancel() async {
        let core = core
        session.onLoop { loop in core.close(reason: SSHError.cancelled(core.label), loop: loop) }
    }
}

/// One output stream of a command, as an async sequence of byte chunks.
public struct SSHOutputStream: AsyncSequence, Sendable {
    public typealias Element = [UInt8]
    let core: ChannelCore
    let session: SSHSession
    let stream: Int

    /// Waits for up to `maxLength` bytes; nil once the stream has ended.
    public func read(maxLength: Int = 64 << 10) async throws -> [UInt8]? {
        let core = core, stream = stream
        return try await session.withChannelCancellation(core) {
            try await session.onLoop { loop, resume in
                core.read(stream: stream, maxLength: maxLength, loop: loop, resume: resume)
            }
        }
    }

    /// Reads the stream to its end.
    public func collect() async throws -> [UInt8] {
        var all: [UInt8] = []
        while let chunk = try await read(maxLength: 1 << 20) { all += chunk }
        return all
    }

    public func makeAsyncIterator() -> Iterator { Iterator(stream: self) }

    /// Yields chunks until the stream ends.
    public struct Iterator: AsyncIteratorProtocol {
        let stream: SSHOutputStream
        public mutating func next() async throws -> [UInt8]? { try await stream.read() }
    }
}

extension SSHSession {
    /// Starts `command` (run by the user's login shell on the server). With `pty`, it runs
    /// on a terminal of that type and size, and its standard error is merged into standard
    /// output. `environment` is sent as SSH `env` requests, which sshd accepts only for the
    /// names its `AcceptEnv` lists; others are silently dropped.
    public func execute(_ command: String, environment: [String: String] = [:], pty: PTYRequest? = nil) async throws -> SSHCommand {
        try await startSession(command: command, environment: environment, pty: pty)
    }

    /// Starts the user's login shell; with `pty`, on a terminal (what `ssh HOST` does).
    public func shell(pty: PTYRequest?, environment: [String: String] = [:]) async throws -> SSHCommand {
        try await startSession(command: nil, environment: environment, pty: pty)
    }

    /// Runs `command` to its end, feeding it `input`, and collects its output. With
    /// `timeout`, a command still running after it is hung up (its channel closed) and
    /// `SSHError.Code.timedOut` names it and the host.
    public func run(
        _ command: String, input: [UInt8]? = nil, environment: [String: String] = [:], pty: PTYRequest? = nil,
        timeout: Duration? = nil
    ) async throws -> SSHCommandResult {
        let running = try await execute(command, environment: environment, pty: pty)
        let expired = ExpiryFlag()
        let watchdog = timeout.map { timeout in
            Task {
                do { try await Task.sleep(for: timeout) } catch { return }
                expired.set()
                await running.cancel()
            }
        }
        defer { watchdog?.cancel() }
        do {
            async let out = running.stdout.collect()
            async let err = running.stderr.collect()
            if let input, !input.isEmpty { try await running.write(input) }
            await running.closeInput()
            let (stdout, stderr) = try await (out, err)
            return SSHCommandResult(status: try await running.exitStatus(), stdout: stdout, stderr: stderr)
        } catch {
            if let timeout, expired.isSet {
                throw SSHError(.timedOut, "the command '\(Self.abbreviate(command))' on \(configuration.destination) did not finish within \(timeout); it was hung up. Check the node (a slow login profile, a stuck Docker daemon)")
            }
            throw error
        }
    }

    private func startSession(command: String?, environment: [String: String], pty: PTYRequest?) async throws -> SSHCommand {
        let label = command.map { "command '\(Self.abbreviate($0))' on \(configuration.destination)" } ?? "shell on \(configuration.destination)"
        var setup: [(OpaquePointer) -> Int32] = []
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) {
            setup.append { raw in
                let rc = name.withUTF8Length { n, nl in value.withUTF8Length { v, vl in libssh2_channel_setenv_ex(raw, n, nl, v, vl) } }
                // A refused variable is not an error (sshd's AcceptEnv decides).
                return rc == LIBSSH2_ERROR_EAGAIN ? rc : 0
            }
        }
        if let pty {
            setup.append { raw in
                pty.term.withUTF8Length { term, length in
                    libssh2_channel_request_pty_ex(raw, term, length, nil, 0, Int32(pty.columns), Int32(pty.rows), 0, 0)
                }
            }
        }
        setup.append { raw in
            if let command {
                return "exec".withUTF8Length { request, requestLength in
                    command.withUTF8Length { text, length in
                        libssh2_channel_process_startup(raw, request, requestLength, text, length)
                    }
                }
            }
            return "shell".withUTF8Length { request, length in libssh2_channel_process_startup(raw, request, length, nil, 0) }
        }
        let core = try await openChannel(kind: .command, label: label, open: { loop in
            "session".withUTF8Length { type, length in
                libssh2_channel_open_ex(loop.raw, type, length, UInt32(ChannelCore.receiveWindow), UInt32(LIBSSH2_CHANNEL_PACKET_DEFAULT), nil, 0)
            }
        }, setup: setup)
        return SSHCommand(core: core, session: self, command: command ?? "")
    }

    static func abbreviate(_ command: String) -> String {
        command.count <= 60 ? command : String(command.prefix(57)) + "..."
    }

    /// Runs `body`; if the task is cancelled meanwhile, closes the channel so that `body`'s
    /// wait ends with a `cancelled` error.
    func withChannelCancellation<T: Sendable>(_ core: ChannelCore, _ body: () async throws -> T) async throws -> T {
        try await withTaskCancellationHandler {
            if Task.isCancelled { throw SSHError.cancelled(core.label) }
            return try await body()
        } onCancel: {
            self.onLoop { loop in core.close(reason: SSHError.cancelled(core.label), loop: loop) }
        }
    }
}

/// Set once by a command's watchdog when its time ran out.
private final class ExpiryFlag: Sendable {
    private let value = Atomic(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
