#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CAgentSupport
import Logging
import NIOCore
import NIOPosix
import Synchronization
import YonderProtocol

/// A process of the agent's own that runs user code: the functions, or one remote object.
///
/// The agent (the supervisor) starts it as `yonder-agent worker` from its own executable and
/// talks to it over a socket pair with the protocol's frames, already trusted (no handshake).
/// Requests are forwarded with ids of the worker's own; their `log` and `output` messages and
/// their answer come back and go to the client with the client's id. When the worker dies
/// (a Swift trap is SIGILL or SIGTRAP), every request it was running fails with `crashed`,
/// naming the request, the signal and the worker's last words on its standard error.
final class Worker: Sendable {
    /// What a worker runs.
    enum Role: Sendable, CustomStringConvertible {
        /// Every user function (one process shared by concurrent calls).
        case functions
        /// One remote object, with the id the agent gave it.
        case object(id: String, type: String)

        var description: String {
            switch self {
            case .functions: "the functions' worker process"
            case .object(let id, let type): "the worker process of object \(id) (\(type))"
            }
        }

        /// A short name for the agent's log.
        var tag: String {
            switch self {
            case .functions: "functions"
            case .object(let id, _): id
            }
        }
    }

    private struct Pending {
        /// Names the request in a crash report (made only then: demangling costs).
        var label: @Sendable () -> String
        /// Gets the request's messages (`log`, `output`), then its answer with `true`. The
        /// ids are still the worker's.
        var deliver: @Sendable (Message, _ final: Bool) -> Void
    }

    private struct State {
        var nextID = 1
        var pending: [Int: Pending] = [:]
        /// Set once the worker is gone: why, for requests that arrive after.
        var death: String?
        /// The agent stopped it on purpose (a released object): not a crash.
        var stopping = false
        /// What it wrote to standard error that tells why it crashed (the runtime's
        /// "Fatal error" and the like, the crashed thread's first frame), or else its last
        /// lines.
        var lastWords = LastWords()
        var stderrClosed = false
    }

    let role: Role
    let pid: pid_t
    private let state = Mutex(State())
    /// The link to the worker, on the agent's event loop (where its clients are served, so
    /// a request and its answer cross no thread in the agent).
    private let link: EventLoopFuture<any Channel>
    private let onDeath: @Sendable (Worker, String) -> Void
    private static let logger = Logger(label: "yonder.agent.worker")

    private init(role: Role, pid: pid_t, linkDescriptor: Int32, eventLoop: any EventLoop, onDeath: @escaping @Sendable (Worker, String) -> Void) {
        self.role = role
        self.pid = pid
        self.onDeath = onDeath
        let handler = LinkHandler()
        self.link = ClientBootstrap(group: eventLoop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .withConnectedSocket(linkDescriptor)
        handler.worker = self
        link.whenFailure { [pid] error in
            close(linkDescriptor)
            Self.logger.error("cannot talk to worker pid \(pid): \(error)")
            kill(pid, SIGKILL)
        }
    }

    /// Starts a worker from the agent's own executable. `onDeath` is called once when it
    /// dies unasked, with the story of its death.
    static func spawn(role: Role, eventLoop: any EventLoop, onDeath: @escaping @Sendable (Worker, String) -> Void) throws -> Worker {
        var pair: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw ProtocolError(.unavailable, "cannot start a worker process: socketpair failed: \(errorText(errno))")
        }
        var errorPipe: [Int32] = [0, 0]
        guard yonder_pipe_cloexec(&errorPipe) == 0 else {
            let reason = errorText(errno)
            close(pair[0])
            close(pair[1])
            throw ProtocolError(.unavailable, "cannot start a worker process: pipe failed: \(reason)")
        }
        var arguments = ["yonder-agent", "worker"]
        if case .object(let id, _) = role { arguments += ["--object", id] }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, errorPipe[1], 2)
        posix_spawn_file_actions_adddup2(&actions, pair[1], WorkerCommand.linkDescriptor)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        SpawnDefaults.apply(to: &attributes)

        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let (pid, rc) = withExtendedLifetime(argv) {
            OwnChildren.start { pid in posix_spawn(&pid, "/proc/self/exe", &actions, &attributes, argv, environ) }
        }
        close(pair[1])
        close(errorPipe[1])
        guard rc == 0 else {
            close(pair[0])
            close(errorPipe[0])
            throw ProtocolError(.unavailable, "cannot start a worker process for user code: \(errorText(rc))")
        }
        let worker = Worker(role: role, pid: pid, linkDescriptor: pair[0], eventLoop: eventLoop, onDeath: onDeath)
        let stderrFD = errorPipe[0]
        Thread.detach { worker.readStandardError(stderrFD) }
        Thread.detach { worker.reap() }
        logger.debug("started \(role), pid \(pid)")
        return worker
    }

    /// Whether the worker has died.
    var isDead: Bool { state.withLock { $0.death != nil } }

    /// Sends a request to the worker: `make` builds the message with the worker's id for it.
    /// `deliver` gets the request's `log` and `output` messages, then its answer (`final`
    /// true), on the agent's event loop; when the worker dies first, the answer is `crashed`.
    /// Returns the worker's id for the request, to cancel it.
    @discardableResult
    func forward(
        label: @autoclosure @escaping @Sendable () -> String, _ make: (Int) -> Message,
        deliver: @escaping @Sendable (Message, _ final: Bool) -> Void
    ) -> Int {
        let (id, death) = state.withLock { state -> (Int, String?) in
            defer { state.nextID += 1 }
            if let death = state.death { return (state.nextID, death) }
            state.pending[state.nextID] = Pending(label: label, deliver: deliver)
            return (state.nextID, nil)
        }
        if let death {
            // Never before `forward` returns: the caller records the request first.
            let failure = Message.Failure(id: id, error: ProtocolError(.crashed, "\(label()) could not run: \(death)"))
            link.eventLoop.execute { deliver(.error(failure), true) }
            return id
        }
        send(ByteBuffer(frames: make(id)))
        return id
    }

    /// `forward` for a task: returns the answer's value, or throws `ForwardedFailure` (or
    /// `crashed`); cancelling the task cancels the request. `log` and `output` messages go
    /// to the current request's client.
    func request(label: @autoclosure @escaping @Sendable () -> String, _ make: (Int) -> Message) async throws -> Payload {
        let context = RequestContext.current
        let sent = Mutex<Int?>(nil)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let id = forward(label: label(), make) { message, final in
                    switch message {
                    case .result(let reply) where final:
                        continuation.resume(returning: Payload(reply.value, attachments: reply.attachments))
                    case .error(let failure) where final:
                        continuation.resume(throwing: ForwardedFailure(failure: failure))
                    default:
                        if final {
                            continuation.resume(throwing: ProtocolError(.internal, "\(label()): the worker answered with \(message.type)"))
                        } else if let context, let relabelled = message.withRequestID(context.id) {
                            context.emit(relabelled)
                        }
                    }
                }
                sent.withLock { $0 = id }
                if Task.isCancelled { cancel(id) }
            }
        } onCancel: {
            if let id = sent.withLock({ $0 }) { cancel(id) }
        }
    }

    /// Asks the worker to cancel its request `id` (it answers `cancelled` if it still runs).
    func cancel(_ id: Int) {
        guard state.withLock({ $0.pending[id] != nil }) else { return }
        send(ByteBuffer(frames: Message.cancel(Message.Cancel(id: id))))
    }

    /// Ends the worker on purpose (its object was released): it exits when its link closes.
    func stop() {
        state.withLock { $0.stopping = true }
        hangUp()
    }

    /// Closes the link; the worker exits when it sees that.
    private func hangUp() {
        link.whenSuccess { $0.close(promise: nil) }
    }

    /// Writes a frame to the link: at once on the agent's event loop, else through it.
    private func send(_ buffer: ByteBuffer) {
        link.whenSuccess { $0.writeAndFlush(buffer, promise: nil) }
    }

    /// A message from the worker (on the agent's event loop).
    fileprivate func receive(_ message: Message) {
        switch message {
        case .result(let reply):
            take(reply.id)?.deliver(message, true)
        case .error(let failure):
            guard let id = failure.id else {
                Self.logger.error("\(role) refused a message of the agent: \(failure.error.message)")
                return
            }
            take(id)?.deliver(message, true)
        case .log(let log):
            state.withLock { $0.pending[log.id] }?.deliver(message, false)
        case .output(let output):
            state.withLock { $0.pending[output.id] }?.deliver(message, false)
        default:
            break
        }
    }

    private func take(_ id: Int) -> Pending? {
        state.withLock { $0.pending.removeValue(forKey: id) }
    }

    /// Copies the worker's standard error to the agent's log, keeping its last lines.
    private func readStandardError(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var partial: [UInt8] = []
        let prefix = "worker \(role.tag) (pid \(pid)): "
        func keep(_ line: [UInt8]) {
            let text = String(decoding: line, as: UTF8.self)
            AgentLogHandler.writeToSink(prefix + text + "\n")
            state.withLock { $0.lastWords.add(text) }
        }
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            partial += buffer[0..<count]
            while let newline = partial.firstIndex(of: UInt8(ascii: "\n")) {
                keep(Array(partial[..<newline]))
                partial.removeSubrange(...newline)
            }
            if partial.count > 64 * 1024 {
                keep(partial)
                partial = []
            }
        }
        if !partial.isEmpty { keep(partial) }
        close(fd)
        state.withLock { $0.stderrClosed = true }
    }

    /// Waits for the worker to exit, then fails what it was running.
    private func reap() {
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        OwnChildren.reaped(pid)
        // Its last words may still be in the pipe: wait a little for the reader to finish
        // (not forever: a child of the user's code may hold the pipe open).
        for _ in 0..<30 where !state.withLock({ $0.stderrClosed }) {
            usleep(10_000)
        }
        let process = "\(role) (pid \(pid)) \(ExitStory(rawStatus: raw))"
        let (pending, stopping, lastWords) = state.withLock { state in
            let pending = state.pending
            state.pending = [:]
            let words = state.lastWords.summary.isEmpty ? "" : "; its last words: \(state.lastWords.summary)"
            state.death = process + words
            return (pending, state.stopping, words)
        }
        hangUp()
        if stopping && pending.isEmpty {
            Self.logger.debug("\(process)")
            return
        }
        let labels = pending.values.map { $0.label() }.sorted()
        let running = labels.isEmpty ? "" : " while running \(labels.prefix(5).joined(separator: ", "))\(labels.count > 5 ? " and \(labels.count - 5) more" : "")"
        let story = process + running + lastWords
        Self.logger.error("\(story)")
        var consequence = ""
        if case .object(let id, let type) = role {
            consequence = "; object \(id) (\(type)) is lost with its state: create it again"
        } else if pending.count > 1 {
            consequence = "; the \(pending.count) calls running in that process failed together"
        }
        // The object is marked lost first, so that a call made as soon as the caller hears of
        // the crash is told so.
        onDeath(self, story)
        for (id, request) in pending {
            let error = ProtocolError(.crashed, "\(request.label()) crashed: \(story)\(consequence)")
            request.deliver(.error(Message.Failure(id: id, error: error)), true)
        }
    }
}

/// What a worker wrote to standard error that tells why it died: the Swift runtime's own
/// words ("Fatal error: …", "*** Swift runtime failure: arithmetic overflow ***") and the
/// first frame of the crashed thread when the backtracer printed one; else its last lines.
struct LastWords {
    private var notable: [String] = []
    private var recent: [String] = []
    private var backtracing = false
    /// Lines left in which to look for the crashed thread's first frame of user code.
    private var frameWindow = 0

    mutating func add(_ line: String) {
        let text = line.trimmingWhitespace
        guard !text.isEmpty else { return }
        if frameWindow > 0 {
            frameWindow -= 1
            // Frames of the runtime's own (the trap itself) are not the news.
            if !text.contains("[system]") && text.first?.isNumber == true {
                frameWindow = 0
                note(text)
            }
            return
        }
        if text.hasPrefix("*** Signal") || text.hasPrefix("💣") {
            backtracing = true
            return
        }
        if text.hasSuffix(" crashed:") {
            frameWindow = 6
            return
        }
        if ["Fatal error", "runtime failure", "Precondition failed", "Assertion failed", "Program crashed"].contains(where: { text.contains($0) }) {
            let stars: (Character) -> Bool = { $0 == "*" || $0 == " " }
            note(String(text.drop(while: stars).reversed().drop(while: stars).reversed()))
            return
        }
        if !backtracing {
            recent.append(String(text.prefix(300)))
            if recent.count > 3 { recent.removeFirst() }
        }
    }

    private mutating func note(_ text: String) {
        guard notable.count < 4 else { return }
        notable.append(String(text.split(whereSeparator: \.isWhitespace).joined(separator: " ").prefix(300)))
    }

    /// One line: the notable lines, or the last ones.
    var summary: String {
        (notable.isEmpty ? recent : notable).joined(separator: " / ")
    }
}

/// How a process ended, in words: the signal and what it usually means, or the exit status.
struct ExitStory: CustomStringConvertible {
    var signal: Int32?
    var exitCode: Int32?

    init(rawStatus raw: Int32) {
        if raw & 0x7f == 0 {
            exitCode = (raw >> 8) & 0xff
        } else {
            signal = raw & 0x7f
        }
    }

    var description: String {
        guard let signal else { return "exited with status \(exitCode ?? 0) (the code called exit)" }
        switch signal {
        case SIGILL, SIGTRAP:
            let name = signal == SIGILL ? "SIGILL" : "SIGTRAP"
            return "died of \(name), a Swift runtime trap (an arithmetic overflow, a nil force-unwrapped, an index out of range, a failed precondition or fatalError)"
        case SIGSEGV:
            return "died of SIGSEGV, a bad memory access (unsafe pointers, C code, or a stack overflow from deep recursion)"
        case SIGBUS:
            return "died of SIGBUS, a bad memory access"
        case SIGABRT:
            return "died of SIGABRT (abort, or a failed assertion in C code)"
        case SIGFPE:
            return "died of SIGFPE, an arithmetic exception"
        case SIGKILL:
            return "was killed with SIGKILL (often the kernel's out-of-memory killer or the container's memory limit: see dmesg on the node)"
        default:
            return "died of signal \(signal)"
        }
    }
}

extension Message {
    /// A worker's `log` or `output` message for a request, with the client's id instead.
    func withRequestID(_ id: Int) -> Message? {
        switch self {
        case .log(var log):
            log.id = id
            return .log(log)
        case .output(var output):
            output.id = id
            return .output(output)
        default:
            return nil
        }
    }
}

/// A request's failure as a worker answered it; the supervisor sends it on with the client's
/// id.
struct ForwardedFailure: Error {
    var failure: Message.Failure
}

/// The agent's end of a worker's link: frames in, handed to the worker; the link closing
/// means the worker is dead or dying.
private final class LinkHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    /// Set once, before the link is registered (so before any read).
    weak var worker: Worker?
    private var reader = MessageReader(maximumLength: Frame.defaultMaximumLength + 4096, acceptsAttachments: true)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reader.append(unwrapInboundIn(data).readableBytesView)
        do {
            while let (object, attachments) = try reader.next() {
                worker?.receive(try Message.decode(object).with(attachments: attachments))
            }
        } catch {
            Logger(label: "yonder.agent.worker").error("a worker sent a bad frame (\(error)); stopping it")
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Make sure it is dead; `reap` tells the rest.
        if let worker { kill(worker.pid, SIGKILL) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Signal handling and process group for a spawned child: default dispositions, nothing
/// blocked, a group of its own (so a terminal's Ctrl-C reaches the agent alone, and
/// terminating a command's group reaches its children).
enum SpawnDefaults {
    static func apply(to attributes: inout posix_spawnattr_t) {
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))
    }
}
