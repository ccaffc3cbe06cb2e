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
import Synchronization
import YonderProtocol

/// `yonder.swap`: the agent replaces its own executable with a new build that a client put on
/// the machine, and executes it in place. The new agent keeps the pid, the listening socket
/// (connections made meanwhile wait in its backlog) and the token; it gets a new instance, which
/// the reply names. So a client swaps a build over the connection it already has, with no other
/// channel to the machine and no wait for a new port.
enum Swap {
    /// What a swap needs of the serving agent; set by `serve` when it reads its build id from a
    /// file (`--build-file`), the mark of an agent whose file may be replaced.
    struct Setup: Sendable {
        /// The agent's executable (argv[0]), which the new build replaces.
        var executable: String
        var buildFile: String
        var token: String
        var listener: Int32
        /// Leaves new connections in the socket's backlog, for the next agent.
        var stopAccepting: @Sendable () async -> Void
        /// Says goodbye to every client, stops the jobs, then executes the agent's file again
        /// with these arguments added.
        var reexecute: @Sendable ([String]) -> Void
    }

    /// What the agent hands to its next build, through a pipe named by `--swap-fd`.
    struct Handover: Codable, Sendable {
        var token: String
        var instance: String
        var listener: Int32

        /// Reads the handover from `fd` (to its end) and closes it.
        static func receive(from fd: Int32) throws -> Handover {
            defer { close(fd) }
            guard let bytes = readToEnd(fd) else { throw AgentError("cannot read --swap-fd \(fd): \(errorText(errno))") }
            let handover: Handover
            do {
                handover = try JSONDecoder().decode(Handover.self, from: Data(bytes))
            } catch {
                throw AgentError("--swap-fd \(fd) holds no handover from a previous agent: \(error)")
            }
            // Inherited without close-on-exec; commands and workers must not hold it.
            _ = fcntl(handover.listener, F_SETFD, FD_CLOEXEC)
            return handover
        }
    }

    static let setup = Mutex<Setup?>(nil)
    /// Set while a swap runs: a second one at the same time is refused.
    private static let underWay = Mutex(false)

    static func run(_ value: JSONValue) async throws -> JSONValue {
        guard let setup = setup.withLock({ $0 }) else {
            throw ProtocolError(.unavailable, "this agent was started without --build-file, so it does not replace its own file; start the new build in its place")
        }
        let arguments = try value.decode(as: BuiltinWire.SwapArguments.self, path: ["arguments"])
        let build = arguments.build
        guard !build.isEmpty, build.utf8.count <= 128, build.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.+".contains($0)) }) else {
            throw ProtocolError(.invalidArguments, "build must be 1 to 128 letters, digits, '-', '_', '.' or '+'", path: ["arguments", "build"])
        }
        guard underWay.withLock({ busy in defer { busy = true }; return !busy }) else {
            throw ProtocolError(.unavailable, "another yonder.swap is under way on this agent")
        }
        var armed = false
        defer { if !armed { underWay.withLock { $0 = false } } }

        let path = arguments.path
        let actual = try Files.hash(path)
        guard actual == arguments.sha256.lowercased() else {
            throw ProtocolError(.invalidArguments, "the file at \(path) has SHA-256 \(actual), not \(arguments.sha256): it is incomplete or another file; put it again", path: ["arguments", "sha256"])
        }
        guard chmod(path, 0o755) == 0 else { throw Files.failure("set the mode of", path) }
        // The file must run here before it replaces the running one: a build for another
        // system, or a broken one, would leave a container whose first process cannot start.
        try await checkRuns(path)
        try install(path, at: setup.executable)
        if let failure = replaceFile(setup.buildFile, Array((build + "\n").utf8), mode: 0o644) {
            throw ProtocolError(.fileError, failure, path: ["arguments", "build"])
        }

        let instance = AgentState.newInstance()
        let handover = Handover(token: setup.token, instance: instance, listener: setup.listener)
        RequestContext.current?.afterReply.set { hand(handover, setup: setup) }
        armed = true
        // Nothing can fail from here on. A client that connects once it has the answer must
        // reach the new agent (PROTOCOL.md): from now on connections wait in the backlog.
        await setup.stopAccepting()
        return try JSONValue(encoding: BuiltinWire.SwapResult(instance: instance, build: build))
    }

    /// Runs the new file with `--help`: it must start and exit 0.
    private static func checkRuns(_ path: String) async throws {
        let errors = Mutex<[UInt8]>([])
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn([path, "--help"], environment: [:], cwd: nil, input: []) { stream, bytes in
                if stream == .stderr { errors.withLock { $0 = Array(($0 + bytes).suffix(2000)) } }
            }
        } catch let error as ProtocolError {
            throw ProtocolError(.execFailed, "the new agent does not run on this machine (\(error.message)); the running agent goes on", path: ["arguments", "path"])
        }
        let status = await child.waitForExit()
        guard status.exitCode == 0 else {
            let text = String(decoding: errors.withLock { $0 }, as: UTF8.self).trimmingWhitespace
            throw ProtocolError(.execFailed, "the new agent does not run on this machine: `\(path) --help` ended with \(status)\(text.isEmpty ? "" : ": \(text)"); the running agent goes on", path: ["arguments", "path"])
        }
    }

    /// Moves the new file to `executable` (renamed, or copied then renamed across file systems).
    private static func install(_ path: String, at executable: String) throws {
        if rename(path, executable) == 0 { return }
        guard errno == EXDEV else { throw Files.failure("move the new agent to", executable) }
        let temporary = executable + ".next"
        let source = open(path, O_RDONLY | O_CLOEXEC)
        guard source >= 0 else { throw Files.failure("open", path) }
        defer { close(source) }
        unlink(temporary)
        let target = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o755)
        guard target >= 0 else { throw Files.failure("write", temporary) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else {
                close(target)
                throw Files.failure("read", path)
            }
            if count == 0 { break }
            writeAll(target, Array(buffer[0..<count]))
        }
        close(target)
        guard rename(temporary, executable) == 0 else { throw Files.failure("move the new agent to", executable) }
        unlink(path)
    }

    /// Writes the handover into a pipe whose reading end the new agent inherits, with a copy
    /// of the listening socket (the old agent closes its own), then executes the new file.
    private static func hand(_ handover: Handover, setup: Setup) {
        var handover = handover
        var ends: [Int32] = [0, 0]
        handover.listener = dup(setup.listener)
        guard handover.listener >= 0, pipe(&ends) == 0, let record = try? JSONEncoder().encode(handover) else {
            writeAll(2, Array("yonder-agent: cannot hand over to the new agent (\(errorText(errno))); executing it afresh\n".utf8))
            setup.reexecute([])
            return
        }
        writeAll(ends[1], Array(record))
        close(ends[1])
        setup.reexecute(["--swap-fd", String(ends[0])])
    }
}
