/// A protocol-level failure: a bad frame, a malformed message, a refused handshake, or an
/// error the peer reported. `code` is what a program switches on; `message` is for people.
public struct ProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure, as it travels on the wire in an `error` message's `code`.
    public var code: Code
    /// What happened, to what, and what to do about it.
    public var message: String
    /// For decode failures: where in the message (or in the arguments) it failed.
    public var path: [String]?

    /// Makes an error of `code` with a human message and an optional coding path.
    public init(_ code: Code, _ message: String, path: [String]? = nil) {
        self.code = code
        self.message = message
        self.path = path
    }

    public var description: String {
        if let path, !path.isEmpty {
            return "\(code.rawValue): \(message) (at \(path.joined(separator: ".")))"
        }
        return "\(code.rawValue): \(message)"
    }

    /// The error codes of PROTOCOL.md. Extensible: a peer may send a code this build does
    /// not know, and it is kept as it came.
    public struct Code: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        /// The code spelled `rawValue` on the wire, e.g. `Code("timed_out")`.
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        // Framing: the connection is closed after these.
        /// A frame whose length prefix is 0.
        public static let emptyFrame = Code("empty_frame")
        /// A frame whose length prefix exceeds the negotiated maximum.
        public static let frameTooLarge = Code("frame_too_large")
        /// The stream ended inside a frame.
        public static let truncatedFrame = Code("truncated_frame")
        /// The payload is not valid UTF-8.
        public static let invalidUTF8 = Code("invalid_utf8")
        /// The payload is not valid JSON.
        public static let invalidJSON = Code("invalid_json")
        /// The payload is JSON but not an object.
        public static let notAnObject = Code("not_an_object")
        /// A message's binary attachments were announced wrongly, or arrived to a peer that
        /// did not accept them, or their frames do not match what was announced; fatal.
        public static let invalidAttachment = Code("invalid_attachment")

        // Messages.
        /// The `type` field names no message type.
        public static let unknownType = Code("unknown_type")
        /// A field is missing or has the wrong JSON type; `path` names it.
        public static let invalidMessage = Code("invalid_message")
        /// A message that is valid but not allowed now (a second `hello`, a reply sent to the agent).
        public static let unexpectedMessage = Code("unexpected_message")
        /// The first message was not `hello`.
        public static let helloRequired = Code("hello_required")
        /// The token in `hello` is wrong or missing.
        public static let unauthorized = Code("unauthorized")
        /// The peer speaks a protocol version this side does not.
        public static let unsupportedVersion = Code("unsupported_version")
        /// A call reused the `id` of a call that is still running.
        public static let duplicateID = Code("duplicate_id")

        // Calls.
        /// No function is registered under that name.
        public static let unknownFunction = Code("unknown_function")
        /// No remote object type is registered under that name.
        public static let unknownObjectType = Code("unknown_object_type")
        /// No live object has that id or name.
        public static let unknownObject = Code("unknown_object")
        /// No distributed method of the object matches the target.
        public static let unknownMethod = Code("unknown_method")
        /// An object with that name exists already.
        public static let nameTaken = Code("name_taken")
        /// The arguments did not decode into the function's input type; `path` names where.
        public static let decodeFailed = Code("decode_failed")
        /// The function's result could not be encoded.
        public static let encodeFailed = Code("encode_failed")
        /// User code threw; `errorType` names the Swift type.
        public static let remoteError = Code("remote_error")
        /// The process running user code for the request died (a Swift trap, a signal, an
        /// exit) before it answered; the message names the request, the signal and, for an
        /// object, that the object is lost.
        public static let crashed = Code("crashed")
        /// The call was cancelled by the client.
        public static let cancelled = Code("cancelled")
        /// The call did not finish within its timeout.
        public static let timedOut = Code("timed_out")
        /// `yonder.exec` could not start the command (not found, not executable, bad cwd).
        public static let execFailed = Code("exec_failed")
        /// `yonder.putFile` or `yonder.getFile` failed on the agent's file system.
        public static let fileError = Code("file_error")
        /// The arguments decoded but are not acceptable (a bad path, a negative length).
        public static let invalidArguments = Code("invalid_arguments")
        /// The agent is shutting down or cannot take more work.
        public static let unavailable = Code("unavailable")
        /// A bug in the agent; the message says what.
        public static let `internal` = Code("internal")

        // Client-side conditions (never sent by an agent).
        /// The connection dropped while the call was pending.
        public static let connectionLost = Code("connection_lost")
    }
}
