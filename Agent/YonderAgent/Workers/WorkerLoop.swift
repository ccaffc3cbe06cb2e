#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CAgentSupport
import Synchronization
import YonderProtocol

/// What a worker process runs: one thread that reads requests from the agent's link, starts
/// a task for each, and writes the answers back.
///
/// In an object's worker the tasks run on this thread itself (it is their task executor): the
/// object is an actor, so its calls run one at a time anyway, and a short call then costs the
/// worker a single wake-up (read, run until it finishes or suspends, answer). A task that
/// suspends (a sleep, I/O) is resumed on this thread too, woken through a pipe. In the
/// functions' worker the tasks run on the concurrency pool instead, so that calls run in
/// parallel as they do in the agent (a function that computes for a second must not hold up
/// the others); that costs one more wake-up per call.
final class WorkerLoop: TaskExecutor, @unchecked Sendable {
    private struct Queue {
        var jobs: [UnownedJob] = []
        /// The loop is (about to be) blocked in poll: an enqueue must wake it.
        var polling = false
    }

    private struct Running {
        var task: Task<Void, Never>
        var stop: StopReason
    }

    private let link: Int32
    private let agent: AgentState
    private let queue = Mutex(Queue())
    private let running = Mutex<[Int: Running]>([:])
    private let writing = Mutex(())
    private let wakeRead: Int32
    private let wakeWrite: Int32

    /// Whether tasks run on this loop's thread (an object's worker) or on the pool.
    private let runsTasksHere: Bool

    init(link: Int32, agent: AgentState, runsTasksHere: Bool) {
        self.link = link
        self.agent = agent
        self.runsTasksHere = runsTasksHere
        var wake: [Int32] = [0, 0]
        _ = yonder_pipe_cloexec(&wake)
        wakeRead = wake[0]
        wakeWrite = wake[1]
        _ = fcntl(wakeRead, F_SETFL, fcntl(wakeRead, F_GETFL) | O_NONBLOCK)
        _ = fcntl(wakeWrite, F_SETFL, fcntl(wakeWrite, F_GETFL) | O_NONBLOCK)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let wake = queue.withLock { queue in
            queue.jobs.append(unowned)
            defer { queue.polling = false }
            return queue.polling
        }
        if wake {
            var byte: UInt8 = 1
            _ = write(wakeWrite, &byte, 1)
        }
    }

    /// Serves the link until it closes, then exits the process.
    func run() -> Never {
        var reader = MessageReader(maximumLength: Frame.defaultMaximumLength + 4096, acceptsAttachments: true)
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            runJobs()
            var fds = [pollfd(fd: link, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, -1)
            queue.withLock { $0.polling = false }
            if ready < 0 { continue }
            if fds[1].revents != 0 {
                var scratch = [UInt8](repeating: 0, count: 64)
                while read(wakeRead, &scratch, scratch.count) > 0 {}
            }
            guard fds[0].revents != 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(link, $0.baseAddress, $0.count) }
            if count < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            // The agent is gone (or stopped this worker): so is this process.
            if count <= 0 { _exit(0) }
            reader.append(buffer[0..<count])
            do {
                while let (object, attachments) = try reader.next() {
                    let message = try Message.decode(object).with(attachments: attachments)
                    handle(message, large: Payload(object, attachments: attachments).approximateSize > 1 << 20)
                }
            } catch {
                send(.error(Message.Failure(id: nil, error: error)))
                _exit(3)
            }
        }
    }

    /// Runs every job queued, including those the jobs queue; marks the loop as polling
    /// once there are none (under the same lock, so no enqueue is missed).
    private func runJobs() {
        while true {
            let jobs = queue.withLock { queue -> [UnownedJob] in
                if queue.jobs.isEmpty {
                    queue.polling = true
                    return []
                }
                defer { queue.jobs = [] }
                return queue.jobs
            }
            if jobs.isEmpty { return }
            for job in jobs {
                job.runSynchronously(on: asUnownedTaskExecutor())
            }
        }
    }

    private func handle(_ message: Message, large: Bool) {
        let agent = self.agent
        switch message {
        case .call(let call):
            start(call.id, large: large) { try await agent.call(call) }
        case .create(let create):
            start(create.id, large: large) { Payload(try JSONValue(encoding: await agent.create(create))) }
        case .invoke(let invoke):
            start(invoke.id, large: large) { try await agent.invoke(invoke) }
        case .release(let release):
            start(release.id, large: large) {
                try await agent.release(release.object)
                return Payload(.null)
            }
        case .cancel(let cancel):
            if let request = running.withLock({ $0[cancel.id] }) {
                request.stop.set(.cancelled)
                request.task.cancel()
            }
        default:
            break
        }
    }

    /// `large`: the request's frame was big, so its memory is given back once the worker is idle.
    private func start(_ id: Int, large: Bool, work: @escaping @Sendable () async throws -> Payload) {
        let stop = StopReason()
        let emit: @Sendable (Message) -> Void = { [self] message in send(message) }
        // The task is queued on this loop; it runs as soon as the frames read are handled.
        let body: @Sendable () async -> Void = { [self] in
            let reply = await RequestRunner.perform(id: id, work: work, stop: stop, clientMaximum: Frame.defaultMaximumLength, binary: true, emit: emit)
            let idle = running.withLock { running in
                running.removeValue(forKey: id)
                return running.isEmpty
            }
            send(reply)
            if idle && large { MemoryRelease.soon() }
        }
        // Made under the lock, so that a task on the pool, which removes its entry under the
        // same lock when it ends, cannot end before it is recorded.
        running.withLock { running in
            let task = runsTasksHere ? Task(executorPreference: self, operation: body) : Task(operation: body)
            running[id] = Running(task: task, stop: stop)
        }
    }

    /// Writes a message to the agent; any thread may.
    private func send(_ message: Message) {
        let frame = message.encodedFrame()
        writing.withLock { _ in writeAll(link, frame) }
    }
}
