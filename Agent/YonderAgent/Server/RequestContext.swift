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

    @TaskLocal static var current: RequestContext?
}
