/// The error the cluster layer throws: a ``code`` to switch on and a message that says what
/// was wrong, where (file and field, node, registry), and what to do.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The cluster spec cannot be used: a bad field, value or file.
        public static let invalidSpec = Code("invalidSpec")
        /// The cloud provider refused or failed a request (its own code and message follow).
        public static let providerFailed = Code("providerFailed")
        /// No cluster of that name is known.
        public static let unknownCluster = Code("unknownCluster")
        /// A node cannot run containers: no Docker, or no access to its daemon.
        public static let dockerUnavailable = Code("dockerUnavailable")
        /// The registry refused the credentials, or the image could not be pulled.
        public static let imageUnavailable = Code("imageUnavailable")
        /// The agent did not start, or did not answer.
        public static let agentFailed = Code("agentFailed")
        /// What the cluster's node held (its container or agent folder) was removed outside
        /// Yonder; `up` makes it again.
        public static let agentGone = Code("agentGone")
        /// A node index outside the cluster.
        public static let unknownNode = Code("unknownNode")
        /// Reading or writing local state failed.
        public static let stateFailed = Code("stateFailed")
        /// Another process is bringing the cluster up or taking it down.
        public static let busy = Code("busy")
        /// A node could not be reached, so what runs there could not be removed or checked.
        public static let nodeUnreachable = Code("nodeUnreachable")
        /// The spec's `setup` (or a task's commands) failed on a node; the message has the
        /// exit status and the output's last lines.
        public static let taskFailed = Code("taskFailed")
        /// No job of that id is on the cluster.
        public static let unknownJob = Code("unknownJob")
    }

    /// What kind of failure this is.
    public let code: Code
    /// A sentence a person can act on (never a secret).
    public let message: String

    /// Makes an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
