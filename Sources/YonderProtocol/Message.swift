#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif
/// One message: the JSON object inside a frame. `type` picks the case.
///
/// PROTOCOL.md is the normative description of every message and field; this enum mirrors
/// it. Fields the receiver does not know are ignored, so peers can add optional fields
/// without a version bump.
package enum Message: Sendable, Hashable {
    /// The first message each way: protocol version, software, and a fresh nonce; the agent's
    /// also proves that it holds the token.
    case hello(Hello)
    /// Client → agent, second message: proves that the client holds the token.
    case auth(Auth)
    /// Client → agent: run a registered function.
    case call(Call)
    /// Client → agent: create a remote object, optionally under a name.
    case create(Create)
    /// Client → agent: find a named object.
    case lookup(Lookup)
    /// Client → agent: call a distributed method of a remote object.
    case invoke(Invoke)
    /// Client → agent: drop an object from the table.
    case release(Release)
    /// Client → agent: cancel the running request `id`.
    case cancel(Cancel)
    /// Agent → client: request `id` succeeded with `value`.
    case result(Reply)
    /// Agent → client: request `id` failed, or (without `id`) the connection failed.
    case error(Failure)
    /// Agent → client: a log line written while request `id` ran.
    case log(Log)
    /// Agent → client: a piece of a command's stdout or stderr, for `yonder.exec`.
    case output(Output)
    /// Either way: a keep-alive probe; the peer answers `pong` with the same nonce.
    case ping(Ping)
    /// Either way: the answer to `ping`.
    case pong(Ping)
    /// Either way: the sender is closing the connection on purpose.
    case goodbye(Goodbye)

    /// The wire name of this message's type.
    package var type: String {
        switch self {
        case .hello: "hello"
        case .auth: "auth"
        case .call: "call"
        case .create: "create"
        case .lookup: "lookup"
        case .invoke: "invoke"
        case .release: "release"
        case .cancel: "cancel"
        case .result: "result"
        case .error: "error"
        case .log: "log"
        case .output: "output"
        case .ping: "ping"
        case .pong: "pong"
        case .goodbye: "goodbye"
        }
    }

    /// The request id this message belongs to, if any.
    package var requestID: Int? {
        switch self {
        case .call(let m): m.id
        case .create(let m): m.id
        case .lookup(let m): m.id
        case .invoke(let m): m.id
        case .release(let m): m.id
        case .cancel(let m): m.id
        case .result(let m): m.id
        case .error(let m): m.id
        case .log(let m): m.id
        case .output(let m): m.id
        case .hello, .auth, .ping, .pong, .goodbye: nil
        }
    }

    /// The binary attachments this message carries (only `call`, `create`, `invoke` and
    /// `result` carry any).
    package var attachments: [Data] {
        switch self {
        case .call(let m): m.attachments
        case .create(let m): m.attachments
        case .invoke(let m): m.attachments
        case .result(let m): m.attachments
        default: []
        }
    }

    /// This message with `attachments` in place of its own (for the four types that carry
    /// them; others are returned unchanged).
    package func with(attachments: [Data]) -> Message {
        switch self {
        case .call(var m): m.attachments = attachments; return .call(m)
        case .create(var m): m.attachments = attachments; return .create(m)
        case .invoke(var m): m.attachments = attachments; return .invoke(m)
        case .result(var m): m.attachments = attachments; return .result(m)
        default: return self
        }
    }

    /// Every message type this version knows.
    package static let knownTypes: Set<String> = [
        "hello", "auth", "call", "create", "lookup", "invoke", "release", "cancel",
        "result", "error", "log", "output", "ping", "pong", "goodbye",
    ]
}

extension Message {
    /// The current protocol version, sent in `hello`.
    package static let protocolVersion = 2

    /// `hello`: the first message in each direction.
    ///
    /// The client's carries its `nonce`; the agent's carries its own `nonce` and `proof`, an
    /// HMAC of both nonces keyed by the token (see ``HandshakeProof``). The token itself never
    /// crosses the wire.
    package struct Hello: Sendable, Hashable {
        /// Protocol version spoken by the sender (wire: `protocol`).
        package var protocolVersion: Int
        /// 16 to 64 fresh random bytes from the sender (wire: base64).
        package var nonce: [UInt8]?
        /// Agent → client: HMAC-SHA256 over both nonces keyed by the token (wire: base64).
        package var proof: [UInt8]?
        /// The sender's software name, e.g. `yonder-agent`.
        package var name: String?
        /// The sender's software version, e.g. `0.1.0`.
        package var version: String?
        /// An identifier of the exact build (agent → client), e.g. a content hash.
        package var build: String?
        /// Agent → client: an identifier of this start of the agent process; it changes
        /// whenever the agent restarts, and with it every object the agent held is gone.
        package var instance: String?
        /// The largest frame payload the sender accepts (wire: `maxFrame`).
        package var maxFrame: Int?
        /// Whether the sender accepts binary attachments (wire: `binary`; PROTOCOL.md
        /// section 3, "Binary attachments").
        package var binary: Bool

        package init(protocolVersion: Int = Message.protocolVersion, nonce: [UInt8]? = nil, proof: [UInt8]? = nil,
                    name: String? = nil, version: String? = nil, build: String? = nil, instance: String? = nil,
                    maxFrame: Int? = nil, binary: Bool = false) {
            self.protocolVersion = protocolVersion
            self.nonce = nonce
            self.proof = proof
            self.name = name
            self.version = version
            self.build = build
            self.instance = instance
            self.maxFrame = maxFrame
            self.binary = binary
        }
    }

    /// `auth`: the client's second message, proving that it holds the token.
    package struct Auth: Sendable, Hashable {
        /// HMAC-SHA256 over both nonces keyed by the token (wire: base64).
        package var proof: [UInt8]

        package init(proof: [UInt8]) {
            self.proof = proof
        }
    }

    /// `call`: run the function registered as `function` with `arguments`.
    package struct Call: Sendable, Hashable {
        package var id: Int
        package var function: String
        package var arguments: JSONValue
        /// Seconds after which the agent gives up with `timed_out`.
        package var timeout: Double?
        /// Binary attachments that `{"$attachment": i}` in `arguments` stand for.
        package var attachments: [Data]

        package init(id: Int, function: String, arguments: JSONValue = .null, timeout: Double? = nil, attachments: [Data] = []) {
            self.id = id
            self.function = function
            self.arguments = arguments
            self.timeout = timeout
            self.attachments = attachments
        }
    }

    /// `create`: make an object of the registered type `objectType`.
    package struct Create: Sendable, Hashable {
        package var id: Int
        package var objectType: String
        package var arguments: JSONValue
        /// A name other connections can look the object up by.
        package var name: String?
        /// When an object of the same type already holds `name`, return it instead of failing.
        package var reuse: Bool
        /// Binary attachments that `{"$attachment": i}` in `arguments` stand for.
        package var attachments: [Data]

        package init(id: Int, objectType: String, arguments: JSONValue = .null, name: String? = nil, reuse: Bool = false, attachments: [Data] = []) {
            self.id = id
            self.objectType = objectType
            self.arguments = arguments
            self.name = name
            self.reuse = reuse
            self.attachments = attachments
        }
    }

    /// `lookup`: find the object named `name`.
    package struct Lookup: Sendable, Hashable {
        package var id: Int
        package var name: String

        package init(id: Int, name: String) {
            self.id = id
            self.name = name
        }
    }

    /// `invoke`: call the distributed method `method` of the object `object`.
    package struct Invoke: Sendable, Hashable {
        package var id: Int
        /// The object id returned by `create` or `lookup`.
        package var object: String
        /// The method's identifier (for Swift clients, the distributed target's mangled name).
        package var method: String
        /// One JSON value per parameter, in order.
        package var arguments: [JSONValue]
        package var timeout: Double?
        /// Binary attachments that `{"$attachment": i}` in `arguments` stand for.
        package var attachments: [Data]

        package init(id: Int, object: String, method: String, arguments: [JSONValue] = [], timeout: Double? = nil, attachments: [Data] = []) {
            self.id = id
            self.object = object
            self.method = method
            self.arguments = arguments
            self.timeout = timeout
            self.attachments = attachments
        }
    }

    /// `release`: drop the object from the agent's table.
    package struct Release: Sendable, Hashable {
        package var id: Int
        package var object: String

        package init(id: Int, object: String) {
            self.id = id
            self.object = object
        }
    }

    /// `cancel`: stop the request `id`; the agent answers that request with `cancelled`.
    package struct Cancel: Sendable, Hashable {
        package var id: Int

        package init(id: Int) { self.id = id }
    }

    /// `result`: the request `id` returned `value`.
    package struct Reply: Sendable, Hashable {
        package var id: Int
        package var value: JSONValue
        /// Binary attachments that `{"$attachment": i}` in `value` stand for.
        package var attachments: [Data]

        package init(id: Int, value: JSONValue = .null, attachments: [Data] = []) {
            self.id = id
            self.value = value
            self.attachments = attachments
        }
    }

    /// `error`: request `id` failed; without an `id` the whole connection failed and closes.
    package struct Failure: Sendable, Hashable {
        package var id: Int?
        package var error: ProtocolError
        /// For `remote_error`: the Swift type of the error user code threw.
        package var errorType: String?

        package init(id: Int?, error: ProtocolError, errorType: String? = nil) {
            self.id = id
            self.error = error
            self.errorType = errorType
        }
    }

    /// `log`: a log line remote code wrote while request `id` ran.
    package struct Log: Sendable, Hashable {
        package var id: Int
        /// `trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical`.
        package var level: String
        package var message: String
        /// Which part of the remote code wrote it (the logger's label).
        package var source: String?
        package var metadata: [String: String]?

        package init(id: Int, level: String, message: String, source: String? = nil, metadata: [String: String]? = nil) {
            self.id = id
            self.level = level
            self.message = message
            self.source = source
            self.metadata = metadata
        }
    }

    /// `output`: bytes a command run by `yonder.exec` wrote, base64 on the wire.
    package struct Output: Sendable, Hashable {
        /// The command's output streams.
        package enum Stream: String, Sendable, Hashable, CaseIterable {
            case stdout, stderr
        }

        package var id: Int
        package var stream: Stream
        package var data: [UInt8]

        package init(id: Int, stream: Stream, data: [UInt8]) {
            self.id = id
            self.stream = stream
            self.data = data
        }
    }

    /// `ping` and `pong`.
    package struct Ping: Sendable, Hashable {
        package var nonce: Int?

        package init(nonce: Int? = nil) { self.nonce = nonce }
    }

    /// `goodbye`.
    package struct Goodbye: Sendable, Hashable {
        package var reason: String?

        package init(reason: String? = nil) { self.reason = reason }
    }
}
