import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension SSHSession {
    /// The size in (columns, rows) of the terminal on `fd`, or nil when it is not a terminal.
    public static func terminalSize(of fd: Int32) -> (columns: Int, rows: Int)? {
        RawTerminal.size(of: fd)
    }

    /// Runs the user's shell, or `command`, with this process's terminal attached, as
    /// `ssh HOST [COMMAND]` does: when `input` is a terminal, the remote side gets a PTY of the
    /// same size and `TERM`, the local terminal is in raw mode until the end (restored on every
    /// exit path, and on SIGTERM/SIGHUP/SIGQUIT), and window changes are forwarded. Returns
    /// how the remote side ended; ``SSHExitStatus/shellStatus`` is what to exit with.
    public func interactiveShell(
        command: String? = nil, environment: [String: String] = [:],
        input: Int32 = 0, output: Int32 = 1, errorOutput: Int32 = 2
    ) async throws -> SSHExitStatus {
        let isTerminal = isatty(input) == 1
        var pty: PTYRequest?
        if isTerminal {
            let size = RawTerminal.size(of: input) ?? RawTerminal.size(of: output) ?? (80, 24)
            pty = PTYRequest(term: ProcessInfo.processInfo.environment["TERM"] ?? "xterm-256color", columns: size.columns, rows: size.rows)
        }
        let remote: SSHCommand
        if let command {
            remote = try await execute(command, environment: environment, pty: pty)
        } else {
            remote = try await shell(pty: pty, environment: environment)
        }
        let terminal = isTerminal ? RawTerminal(fd: input) : nil
        defer { terminal?.restore() }

        // Window changes.
        var resizeSource: (any DispatchSourceSignal)?
        if isTerminal {
            signal(SIGWINCH, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGWINCH, queue: .global())
            source.setEventHandler {
                guard let size = RawTerminal.size(of: input) else { return }
                Task { try? await remote.resize(columns: size.columns, rows: size.rows) }
            }
            source.resume()
            resizeSource = source
        }
        defer {
            resizeSource?.cancel()
            if isTerminal { signal(SIGWINCH, SIG_DFL) }
        }

        // Local input, read when readable (no thread waits on it), written in order.
        let (chunks, feed) = AsyncStream.makeStream(of: [UInt8].self)
        let reader = DispatchSource.makeReadSource(fileDescriptor: input, queue: DispatchQueue(label: "yonder-ssh-stdin"))
        reader.setEventHandler {
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            let n = read(input, &buffer, buffer.count)
            if n > 0 {
                feed.yield(Array(buffer[..<n]))
            } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                feed.finish()
                reader.cancel()
            }
        }
        reader.resume()
        defer {
            reader.cancel()
            feed.finish()
        }
        let writer = Task {
            for await chunk in chunks {
                do { try await remote.write(chunk) } catch { break }
            }
            if !Task.isCancelled { await remote.closeInput() }
        }
        defer { writer.cancel() }

        async let copiedOut: Void = Self.copy(remote.stdout, to: output)
        async let copiedErr: Void = Self.copy(remote.stderr, to: errorOutput)
        _ = await (try? copiedOut, try? copiedErr)
        return try await remote.exitStatus()
    }

    private static func copy(_ stream: SSHOutputStream, to fd: Int32) async throws {
        for try await chunk in stream {
            var written = 0
            while written < chunk.count {
                let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress! + written, chunk.count - written) }
                if n < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    return
                }
                written += n
            }
        }
    }
}
