#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import CAgentSupport
import NIOCore
import Synchronization
import YonderProtocol

/// The agent's worker processes: one for the user's functions, started ahead of the first
/// call and again after it dies, and one per remote object.
final class WorkerPool: Sendable {
    private let functionWorker = Mutex<Worker?>(nil)
    private let objects: ObjectTable
    private let eventLoop: any EventLoop

    /// `eventLoop`: where the agent serves its clients; the workers' links live there too.
    init(objects: ObjectTable, eventLoop: any EventLoop) {
        self.objects = objects
        self.eventLoop = eventLoop
    }

    /// Starts the functions' worker now, so the first call does not wait for it.
    func warmUp() {
        _ = try? functions()
    }

    /// The live functions' worker, started if there is none (or it died).
    func functions() throws -> Worker {
        try functionWorker.withLock { slot throws -> Worker in
            if let worker = slot, !worker.isDead { return worker }
            let worker = try Worker.spawn(role: .functions, eventLoop: eventLoop) { _, _ in }
            slot = worker
            return worker
        }
    }

    /// A new worker for object `id` of type `type`; when it dies the object is lost.
    func objectWorker(id: String, type: String) throws -> Worker {
        let objects = self.objects
        return try Worker.spawn(role: .object(id: id, type: type), eventLoop: eventLoop) { _, story in
            objects.lost(id, story: story)
        }
    }
}

/// `yonder-agent worker`: what a worker process runs (never by hand). It serves the trusted
/// link on descriptor 3 and exits when the link closes or the agent is gone.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run user code for an agent (the agent starts these itself).",
        shouldDisplay: false)

    static let linkDescriptor: Int32 = 3

    @Option(help: "The id of the one object this process hosts; without it, it runs functions.")
    var object: String?

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        // A terminal's Ctrl-C is for the agent, which says goodbye to its clients first.
        signal(SIGINT, SIG_IGN)
        AgentLogHandler.bootstrapOnce()
        yonder_tune_memory()
        var status = stat()
        guard fstat(Self.linkDescriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFSOCK else {
            throw ValidationError("worker is started by the agent itself, with its link on descriptor 3")
        }
        // The agent's end closing ends the link, and so this process; this watch covers user
        // code that never returns to the event loop.
        let parent = getppid()
        Thread.detach {
            while getppid() == parent { sleep(1) }
            _exit(0)
        }
        let registry = try (pendingRegistry.withLock { $0 } ?? Registry(functions: [], objects: []))
        let agent = try AgentState(
            registry: registry, token: "", build: "worker", maximumFrameLength: Frame.defaultMaximumLength,
            firstObjectID: object)
        let loop = WorkerLoop(link: Self.linkDescriptor, agent: agent, runsTasksHere: object != nil)
        Thread.detach { loop.run() }
        // The loop's thread ends the process; this task only waits.
        while true { try await Task.sleep(for: .seconds(3600)) }
    }
}
