internal import CLibSSH2
import Synchronization
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Something the loop drives until it is done: a channel, or one libssh2 call being retried.
protocol LoopTask: AnyObject {
    /// Makes what progress it can without blocking. Returns true when finished.
    func step(_ loop: SessionLoop) -> Bool
    /// The session is gone: resume every waiter with `error`. Called once, then dropped.
    func fail(_ error: SSHError)
    /// When the task gives up by itself, if ever: the loop wakes up by then to step it.
    var deadline: ContinuousClock.Instant? { get }
}

extension LoopTask {
    var deadline: ContinuousClock.Instant? { nil }
}

/// The single owner of one libssh2 session.
///
/// libssh2 is not thread-safe per session, so one dedicated thread makes every libssh2 call
/// for the session, in non-blocking mode, and sleeps in poll() on the socket and a wake-up
/// pipe. Other threads hand it work with ``submit(_:)``; Swift tasks await continuations that
/// the loop resumes, so no task and no thread waits per channel. Each round the loop runs the
/// submitted jobs, steps every task until none makes progress, sends keep-alives, and polls.
final class SessionLoop: TaskExecutor, @unchecked Sendable {
    // Safe: `inboxState` is behind `inboxLock`; every other mutable member is touched only on the
    // loop thread (jobs and tasks run there).
    let raw: OpaquePointer
    let socket: Int32
    /// The proxy command at the other end of `socket`, if the session runs through one.
    var proxyProcess: pid_t?
    let destination: String
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let inboxLock = NSLock()
    private var inboxState = Inbox()
    private struct Inbox {
        var jobs: [(SSHError?) -> Void] = []
        var finished = false
        var endWaiters: [() -> Void] = []
    }
    let inbound: UnsafeMutablePointer<yonder_ssh_inbound>
    private static let inboundCapacity = 4 << 20

    /// A read buffer shared by everything the loop reads into (loop thread only).
    let scratch = UnsafeMutableRawPointer.allocate(byteCount: SessionLoop.scratchSize, alignment: 16)
    static let scratchSize = 256 << 10
    private var tasks: [any LoopTask] = []
    private(set) var failure: SSHError?
    private var closing = false
    /// Set once the SSH handshake has completed (loop thread only).
    private var established = false
    private var keepAlive: (interval: Int, countMax: Int)?
    private var lastHeard = ContinuousClock.now
    private var keepAliveStarted = false
    /// Monotonic time used by retrying tasks for their deadlines.
    var now: ContinuousClock.Instant { ContinuousClock.now }
    /// Who holds each gate (see ``enter(_:as:)``).
    private var gateHolders: [ObjectIdentifier: ObjectIdentifier] = [:]
    /// Set when a gate opens, so that the tasks waiting for it are stepped again at once.
    private var gateOpened = false

    private init(raw: OpaquePointer, socket: Int32, destination: String, inbound: UnsafeMutablePointer<yonder_ssh_inbound>, wake: (Int32, Int32)) {
        self.raw = raw
        self.socket = socket
        self.destination = destination
        self.inbound = inbound
        self.wakeRead = wake.0
        self.wakeWrite = wake.1
    }

    /// Connects a TCP socket to the configuration's host, makes a non-blocking libssh2
    /// session on it and starts the loop thread. The SSH handshake is left to the caller.
    static func start(_ configuration: SSHConfiguration) async throws -> SessionLoop {
        LibSSH2.initialize()
        let destination = configuration.proxyCommand.map {
            "\(configuration.host):\(configuration.port) (through the proxy command `\($0)`)"
        } ?? "\(configuration.host):\(configuration.port)"
        let deadline = ContinuousClock.now + configuration.connectTimeout
        let result: Result<SessionLoop, SSHError> = await withCheckedContinuation { continuation in
            let thread = Thread {
                let socket: Int32
                var proxy: pid_t?
                do {
                    if let command = configuration.proxyCommand {
                        (socket, proxy) = try ProxyCommandConnector.connect(
                            command: command, host: configuration.host, port: configuration.port, user: configuration.user)
                    } else {
                        socket = try TCPConnector.connect(host: configuration.host, port: configuration.port, deadline: deadline)
                    }
                } catch let error as SSHError {
                    continuation.resume(returning: .failure(error))
                    return
                } catch {
                    continuation.resume(returning: .failure(SSHError(.unreachable, "cannot connect to \(destination): \(error)")))
                    return
                }
                let inbound = UnsafeMutablePointer<yonder_ssh_inbound>.allocate(capacity: 1)
                inbound.initialize(to: yonder_ssh_inbound(
                    data: UnsafeMutablePointer<UInt8>.allocate(capacity: inboundCapacity),
                    capacity: inboundCapacity, start: 0, end: 0, taken: 0, closed: 0, error: 0, socket: socket))
                guard let raw = yonder_ssh_session_new(inbound) else {
                    close(socket)
                    if let proxy { ProxyCommandConnector.finish(proxy) }
                    inbound.pointee.data.deallocate()
                    inbound.deallocate()
                    continuation.resume(returning: .failure(SSHError(.handshakeFailed, "libssh2 could not allocate a session for \(destination)")))
                    return
                }
                libssh2_session_set_blocking(raw, 0)
                // Prefer the fastest cipher and MAC that OpenSSH and libssh2 share.
                _ = libssh2_session_method_pref(raw, LIBSSH2_METHOD_CRYPT_CS, "aes128-ctr,aes256-ctr,aes192-ctr,aes256-cbc,aes128-cbc")
                _ = libssh2_session_method_pref(raw, LIBSSH2_METHOD_CRYPT_SC, "aes128-ctr,aes256-ctr,aes192-ctr,aes256-cbc,aes128-cbc")
                _ = libssh2_session_method_pref(raw, LIBSSH2_METHOD_MAC_CS, "hmac-sha2-256,hmac-sha2-512,hmac-sha1")
                _ = libssh2_session_method_pref(raw, LIBSSH2_METHOD_MAC_SC, "hmac-sha2-256,hmac-sha2-512,hmac-sha1")
                var fds: [Int32] = [0, 0]
                guard pipe(&fds) == 0 else {
                    libssh2_session_free(raw)
                    close(socket)
                    if let proxy { ProxyCommandConnector.finish(proxy) }
                    continuation.resume(returning: .failure(SSHError(.connectionLost, "cannot make a wake-up pipe: \(String(cString: strerror(errno)))")))
                    return
                }
                for fd in fds {
                    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                    _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                }
                let loop = SessionLoop(raw: raw, socket: socket, destination: destination, inbound: inbound, wake: (fds[0], fds[1]))
                loop.proxyProcess = proxy
                if let interval = configuration.keepAliveInterval {
                    let seconds = max(1, Int(interval.components.seconds))
                    loop.keepAlive = (seconds, max(1, configuration.keepAliveCountMax))
                    libssh2_keepalive_config(raw, 1, UInt32(seconds))
                }
                continuation.resume(returning: .success(loop))
                loop.run()
            }
            thread.name = "yonder-ssh \(destination)"
            thread.stackSize = 1 << 20
            thread.start()
        }
        return try result.get()
    }

    // MARK: Handing work to the loop

    private func withInbox<R>(_ body: (inout Inbox) -> R) -> R {
        inboxLock.lock()
        defer { inboxLock.unlock() }
        return body(&inboxState)
    }

    /// Runs `job` on the loop thread with nil, or, once the session has failed or closed,
    /// with the error instead: then the job must only resume its waiters and never touch
    /// libssh2 (it may run on the caller's thread).
    func submit(_ job: @escaping (SSHError?) -> Void) {
        if !append(job) {
            // The loop has ended and `failure` no longer changes.
            job(failure ?? SSHError.closed("the SSH session to \(destination)"))
        }
    }

    /// Runs `job` on the loop thread, between rounds of I/O (see ``SSHTunnel/sessionExecutor``); once
    /// the loop has ended, on the global executor instead.
    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        if !append({ [self] _ in unowned.runSynchronously(on: asUnownedTaskExecutor()) }) {
            globalConcurrentExecutor.enqueue(ExecutorJob(unowned))
        }
    }

    /// Queues `job` for the loop thread and wakes it from poll(); false, having queued nothing,
    /// once the loop has ended.
    private func append(_ job: @escaping (SSHError?) -> Void) -> Bool {
        withInbox { inbox in
            if inbox.finished { return false }
            inbox.jobs.append(job)
            if inbox.jobs.count == 1 {
                // Under the lock: `finish` closes the pipe under it, once `finished` is set, so
                // this never writes to a closed descriptor or to one reused since.
                var byte: UInt8 = 1
                _ = write(wakeWrite, &byte, 1)
            }
            return true
        }
    }

    /// Adds a task to be stepped each round (call on the loop thread).
    func add(_ task: any LoopTask) {
        if let failure {
            task.fail(failure)
            return
        }
        tasks.append(task)
    }

    /// Runs `body` on the loop thread until it returns a value (nil means libssh2 would
    /// block: try again after the next poll), throws, or `deadline` passes. With a `gate`,
    /// `body` runs only while no other task holds that gate (see ``enter(_:as:)``).
    func perform<T: Sendable>(
        _ what: String, deadline: ContinuousClock.Instant? = nil, gate: AnyObject? = nil,
        _ body: @escaping (SessionLoop) throws -> T?
    ) async throws -> T {
        let result: Result<T, any Error> = await withCheckedContinuation { continuation in
            let task = RetryTask(what: what, deadline: deadline, gate: gate, body: body) { continuation.resume(returning: $0) }
            submit { [self] ended in
                if let ended {
                    task.fail(ended)
                } else if !task.step(self) {
                    self.add(task)
                }
            }
        }
        return try result.get()
    }

    // MARK: Gates

    /// The gate for opening channels and for the requests that set them up. libssh2 1.10
    /// keeps the state of a channel being opened in the session, not in the call, so two opens
    /// in flight at once share it and one can get the other's channel; and a call waiting for
    /// its answer (an open's confirmation, an exec's or pty's success) fails with -1 when the
    /// next packet is the same kind of answer for another channel ("Unexpected error", "Failed
    /// waiting for channel success"). So one such exchange runs at a time. The SFTP instance
    /// keeps its requests' state the same way (its gate is the SFTP client).
    var channelOpenGate: AnyObject { self }

    /// Takes `gate` for `owner` if it is free (or already `owner`'s); false means wait.
    func enter(_ gate: AnyObject, as owner: AnyObject) -> Bool {
        let key = ObjectIdentifier(gate), me = ObjectIdentifier(owner)
        if let holder = gateHolders[key] { return holder == me }
        gateHolders[key] = me
        return true
    }

    /// Frees `gate` if `owner` holds it.
    func leave(_ gate: AnyObject, as owner: AnyObject) {
        let key = ObjectIdentifier(gate)
        guard gateHolders[key] == ObjectIdentifier(owner) else { return }
        gateHolders[key] = nil
        gateOpened = true
    }

    /// Stops the loop after a clean disconnect; tasks still running fail with `reason`.
    /// Returns at once: the loop thread goes on disconnecting and freeing the session (in
    /// libssh2 and libcrypto) for a while, so whoever needs it gone, for instance before the
    /// process exits, awaits ``shutdownAndWait(reason:)`` instead.
    func shutdown(reason: SSHError) {
        submit { [self] ended in
            guard ended == nil, !closing else { return }
            closing = true
            for task in tasks { task.fail(reason) }
            tasks = []
            guard established else {
                // The handshake never finished: there is no SSH connection to say goodbye on
                // (the server may never have spoken), so free the session at once.
                failure = reason
                return
            }
            add(RetryTask<Void>(what: "disconnect", deadline: now + .seconds(2), body: { loop in
                let rc = libssh2_session_disconnect_ex(loop.raw, SSH_DISCONNECT_BY_APPLICATION, "bye", "")
                return rc == LIBSSH2_ERROR_EAGAIN ? nil : ()
            }, resume: { [self] _ in
                failure = reason
            }))
        }
    }

    /// Stops the loop as ``shutdown(reason:)`` does and returns once the loop thread has
    /// made its last libssh2 call: the session is freed and its socket closed.
    func shutdownAndWait(reason: SSHError) async {
        shutdown(reason: reason)
        await waitUntilEnded()
    }

    /// Returns once the loop thread has ended and the session is freed.
    func waitUntilEnded() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now: Bool = withInbox { inbox in
                if inbox.finished { return true }
                inbox.endWaiters.append { continuation.resume() }
                return false
            }
            if now { continuation.resume() }
        }
    }

    // MARK: Errors

    /// libssh2's last error code and message for this session.
    func lastError() -> (code: Int32, message: String) {
        var message: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        let code = libssh2_session_last_error(raw, &message, &length, 0)
        return (code, message.map { String(cString: $0) } ?? "")
    }

    /// Turns a negative libssh2 return code into an error: connection-level codes become
    /// `connectionLost` (and end the session), others become `fallback`.
    func error(_ rc: Int32, _ fallback: SSHError.Code, _ what: String) -> SSHError {
        let (code, message) = lastError()
        let libCode = rc < 0 ? rc : code
        if Self.isConnectionLevel(libCode) {
            let lost = lostError(libCode, message)
            if failure == nil { failure = lost }
            return lost
        }
        return SSHError(fallback, "\(what) failed on \(destination)", libssh2Code: libCode, libssh2Message: message)
    }

    private func lostError(_ code: Int32, _ message: String) -> SSHError {
        SSHError(.connectionLost, "the connection to \(destination) was lost", libssh2Code: code, libssh2Message: message)
    }

    static func isConnectionLevel(_ code: Int32) -> Bool {
        [LIBSSH2_ERROR_SOCKET_NONE, LIBSSH2_ERROR_SOCKET_SEND, LIBSSH2_ERROR_SOCKET_RECV,
         LIBSSH2_ERROR_SOCKET_DISCONNECT, LIBSSH2_ERROR_SOCKET_TIMEOUT, LIBSSH2_ERROR_TIMEOUT,
         LIBSSH2_ERROR_KEX_FAILURE, LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE, LIBSSH2_ERROR_DECRYPT,
         LIBSSH2_ERROR_BAD_SOCKET].contains(code)
    }

    // MARK: The loop

    /// How many session loops run in this process (their threads), for tests that check
    /// nothing is left behind.
    package static var running: Int { runningCount.load(ordering: .relaxed) }
    private static let runningCount = Atomic(0)

    /// The loop thread, once it runs (for ``isCurrent``).
    private let thread = Mutex<pthread_t?>(nil)

    /// True on the loop thread.
    var isCurrent: Bool {
        guard let thread = thread.withLock({ $0 }) else { return false }
        return pthread_equal(thread, pthread_self()) != 0
    }

    private func run() {
        thread.withLock { $0 = pthread_self() }
        Self.runningCount.add(1, ordering: .relaxed)
        defer { Self.runningCount.subtract(1, ordering: .relaxed) }
        var pollSet = [pollfd(fd: socket, events: 0, revents: 0), pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
        var drain = [UInt8](repeating: 0, count: 256)
        while true {
            runJobs()
            stepTasks()
            checkKeepAlive()
            if let failure {
                finish(failure)
                return
            }
            let wantsWrite = libssh2_session_block_directions(raw) & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0
            let room = inbound.pointee.capacity - inbound.pointee.end
            var events: Int32 = 0
            if room > 0 && inbound.pointee.closed == 0 && inbound.pointee.error == 0 { events |= Int32(POLLIN) }
            if wantsWrite { events |= Int32(POLLOUT) }
            pollSet[0].events = Int16(events)
            pollSet[0].revents = 0
            pollSet[1].revents = 0
            let ready = poll(&pollSet, 2, pollTimeout())
            if ready < 0 && errno != EINTR {
                failure = SSHError(.connectionLost, "poll failed for \(destination): \(String(cString: strerror(errno)))")
                continue
            }
            if pollSet[1].revents != 0 {
                while read(wakeRead, &drain, drain.count) > 0 {}
            }
            if pollSet[0].revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 {
                fillInbound()
            }
        }
    }

    /// How long poll() may sleep, in milliseconds: until the next keep-alive check or the
    /// nearest task deadline, whichever comes first.
    private func pollTimeout() -> Int32 {
        let longest: Int32 = keepAlive == nil ? 1000 : 250
        guard let nearest = tasks.compactMap(\.deadline).min() else { return longest }
        let wait = nearest - now
        if wait <= .zero { return 0 }
        let milliseconds = wait.components.seconds * 1000 + wait.components.attoseconds / 1_000_000_000_000_000 + 1
        return Int32(min(Int64(longest), milliseconds))
    }

    private func runJobs() {
        while true {
            let jobs = withInbox { inbox in
                let jobs = inbox.jobs
                inbox.jobs = []
                return jobs
            }
            if jobs.isEmpty { return }
            for job in jobs { job(failure) }
        }
    }

    /// Steps every task; repeats while libssh2 took bytes from the socket buffer, since a
    /// read on one channel can queue data for a channel stepped before it.
    private func stepTasks() {
        for _ in 0..<64 {
            let taken = inbound.pointee.taken
            gateOpened = false
            var index = 0
            while index < tasks.count {
                if failure != nil { return }
                if tasks[index].step(self) {
                    tasks.remove(at: index)
                } else {
                    index += 1
                }
            }
            if inbound.pointee.taken == taken && !gateOpened { return }
        }
    }

    /// Reads what the socket holds into the buffer libssh2 reads from.
    private func fillInbound() {
        let state = inbound
        while state.pointee.end < state.pointee.capacity {
            if state.pointee.start > 0 && state.pointee.start == state.pointee.end {
                state.pointee.start = 0
                state.pointee.end = 0
            }
            if state.pointee.start > 0 && state.pointee.end == state.pointee.capacity {
                let count = state.pointee.end - state.pointee.start
                memmove(state.pointee.data, state.pointee.data + state.pointee.start, count)
                state.pointee.start = 0
                state.pointee.end = count
            }
            let n = recv(socket, state.pointee.data + state.pointee.end, state.pointee.capacity - state.pointee.end, 0)
            if n > 0 {
                state.pointee.end += n
                lastHeard = now
                continue
            }
            if n == 0 {
                state.pointee.closed = 1
            } else if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR {
                state.pointee.error = errno
            }
            return
        }
    }

    private func checkKeepAlive() {
        guard failure == nil, !closing else { return }
        if inbound.pointee.closed != 0 || inbound.pointee.error != 0, inbound.pointee.start == inbound.pointee.end {
            let reason = inbound.pointee.error != 0 ? String(cString: strerror(inbound.pointee.error)) : "the server closed the connection"
            failure = SSHError(.connectionLost, "the connection to \(destination) was lost: \(reason)")
            return
        }
        guard let keepAlive, keepAliveStarted else { return }
        var next: Int32 = 0
        let rc = libssh2_keepalive_send(raw, &next)
        if rc != 0 && rc != LIBSSH2_ERROR_EAGAIN {
            failure = error(rc, .connectionLost, "keep-alive")
            return
        }
        let silence = now - lastHeard
        let bound = Duration.seconds(keepAlive.interval * keepAlive.countMax)
        if silence > bound {
            failure = SSHError(.connectionLost, "the connection to \(destination) was lost: no answer for \(silence.components.seconds) s (keep-alive every \(keepAlive.interval) s, \(keepAlive.countMax) missed)")
        }
    }

    /// Records that the handshake completed: from now on closing says goodbye to the server
    /// first. Call on the loop thread.
    func handshakeCompleted() {
        established = true
    }

    /// Frees the libssh2 session without waiting on the server.
    ///
    /// libssh2 closes each channel still open before freeing the session and, without
    /// blocking, returns EAGAIN (and frees nothing) until the server confirms the close:
    /// never, when the server is frozen or gone. With the socket shut down and the read
    /// buffer at end-of-stream, its sends and reads fail at once and it frees everything.
    private func freeSession() {
        #if canImport(Glibc)
        _ = Glibc.shutdown(socket, Int32(SHUT_RDWR))
        #else
        _ = Darwin.shutdown(socket, SHUT_RDWR)
        #endif
        inbound.pointee.start = 0
        inbound.pointee.end = 0
        inbound.pointee.closed = 1
        var attempts = 0
        while libssh2_session_free(raw) == LIBSSH2_ERROR_EAGAIN && attempts < 100 { attempts += 1 }
    }

    /// Starts keep-alives and dead-peer detection (once logged in); call on the loop thread.
    func startKeepAlive() {
        keepAliveStarted = true
        lastHeard = now
    }

    private func finish(_ error: SSHError) {
        for task in tasks { task.fail(error) }
        tasks = []
        freeSession()
        close(socket)
        if let proxyProcess { ProxyCommandConnector.finish(proxyProcess) }
        inbound.pointee.data.deallocate()
        inbound.deallocate()
        scratch.deallocate()
        let (pending, waiters) = withInbox { inbox in
            inbox.finished = true
            close(wakeRead)
            close(wakeWrite)
            defer {
                inbox.jobs = []
                inbox.endWaiters = []
            }
            return (inbox.jobs, inbox.endWaiters)
        }
        for job in pending { job(error) }
        for waiter in waiters { waiter() }
    }
}

/// One libssh2 call retried after each poll until it stops returning EAGAIN.
final class RetryTask<T: Sendable>: LoopTask {
    let what: String
    let deadline: ContinuousClock.Instant?
    let gate: AnyObject?
    let body: (SessionLoop) throws -> T?
    let resume: (Result<T, any Error>) -> Void
    private var done = false

    init(what: String, deadline: ContinuousClock.Instant?, gate: AnyObject? = nil, body: @escaping (SessionLoop) throws -> T?, resume: @escaping (Result<T, any Error>) -> Void) {
        self.what = what
        self.deadline = deadline
        self.gate = gate
        self.body = body
        self.resume = resume
    }

    func step(_ loop: SessionLoop) -> Bool {
        if done { return true }
        let result: Result<T, any Error>
        if let deadline, loop.now > deadline {
            result = .failure(SSHError(.timedOut, "\(what) on \(loop.destination) timed out"))
        } else {
            if let gate, !loop.enter(gate, as: self) { return false }
            do {
                guard let value = try body(loop) else { return false }
                result = .success(value)
            } catch {
                result = .failure(error)
            }
        }
        if let gate { loop.leave(gate, as: self) }
        finish(result)
        return true
    }

    func fail(_ error: SSHError) { finish(.failure(error)) }

    private func finish(_ result: Result<T, any Error>) {
        guard !done else { return }
        done = true
        resume(result)
    }
}
