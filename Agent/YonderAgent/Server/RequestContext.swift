import YonderProtocol

/// The request a task is running on behalf of: log lines and command output written while it
/// runs go to that request's connection, tagged with its id.
struct RequestContext: Sendable {
    /// The request id.
    var id: Int
    /// Sends a message on the request's connection, in order with its reply.
    var emit: @Sendable (Message) -> Void

    @TaskLocal static var current: RequestContext?
}
