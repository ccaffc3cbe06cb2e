import Synchronization
import YonderProtocol

/// The request a task is running on behalf of: log lines and command output written while it
/// runs go to that request's connection, tagged with its id.
struct RequestContext: Sendable {
    /// The request id.
    var id: Int
    /// Sends a message on the request's connection, in order with its reply.
    var emit: @Sendable (Message) -> Void
    /// Blocks the calling thread while the connection's replies wait for a slow client (above
    /// its high water mark), so a producer of output (exec's pipe reader) stops reading its
    /// pipes and the command itself waits. Only for threads of the agent's own, never a task.
    var holdBack: @Sendable () -> Void = {}
    /// Runs once the request's reply has been handed to the connection (`yonder.swap` starts
    /// the new agent there, so that its reply is written before the goodbye).
    var afterReply = AfterReply()

    @TaskLocal static var current: RequestContext?
}

/// What a request asked to run after its reply was written (at most one action).
final class AfterReply: Sendable {
    private let action = Mutex<(@Sendable () -> Void)?>(nil)

    func set(_ body: @escaping @Sendable () -> Void) {
        action.withLock { $0 = body }
    }

    func run() {
        action.withLock { $0.take() }?()
    }
}
