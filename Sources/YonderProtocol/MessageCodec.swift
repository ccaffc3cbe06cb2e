#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif

extension Message {
    /// Decodes one frame payload, checking it the way PROTOCOL.md orders: UTF-8, then JSON,
    /// then an object, then a known `type`, then that type's fields.
    package static func decode(payload: some Collection<UInt8>) throws(ProtocolError) -> Message {
        let value = try decodeJSON(payload: payload)
        return try decode(value)
    }

    /// Decodes a frame payload into a JSON object, without interpreting it.
    package static func decodeJSON(payload: some Collection<UInt8>) throws(ProtocolError) -> JSONValue {
        // The parser checks the UTF-8 of every string, and any byte from 0x80 on outside a
        // string is a syntax error: a payload it takes is valid UTF-8, checked once.
        let parsed =
            payload.withContiguousStorageIfAvailable { JSONBytes.parse(buffer: $0) }
            ?? Array(payload).withUnsafeBufferPointer { JSONBytes.parse(buffer: $0) }
        let value: JSONValue
        switch parsed {
        case .success(let parsed):
            value = parsed
        case .failure(let error):
            // UTF-8 is checked before JSON: a payload that is not valid UTF-8 says so, even
            // when the parser stopped first at a syntax error before the bad bytes.
            if error.code != .invalidUTF8, String(validating: payload, as: UTF8.self) == nil {
                throw ProtocolError(.invalidUTF8, "the frame's payload is not valid UTF-8")
            }
            throw error
        }
        guard case .object = value else {
            throw ProtocolError(.notAnObject, "a message must be a JSON object, not \(value.typeName)")
        }
        return value
    }

    /// Decodes an already parsed JSON object into a message.
    package static func decode(_ value: JSONValue) throws(ProtocolError) -> Message {
        guard case .object(let members) = value else {
            throw ProtocolError(.notAnObject, "a message must be a JSON object, not \(value.typeName)")
        }
        let fields = Fields(members: members)
        let type = try fields.string("type")
        switch type {
        case "hello":
            return .hello(Hello(
                protocolVersion: try fields.int("protocol"),
                nonce: try fields.optionalBase64("nonce"),
                proof: try fields.optionalBase64("proof"),
                name: try fields.optionalString("name"),
                version: try fields.optionalString("version"),
                build: try fields.optionalString("build"),
                instance: try fields.optionalString("instance"),
                maxFrame: try fields.optionalInt("maxFrame", minimum: 1),
                binary: try fields.optionalBool("binary") ?? false))
        case "auth":
            return .auth(Auth(proof: try fields.base64("proof")))
        case "call":
            return .call(Call(
                id: try fields.id(),
                function: try fields.string("function"),
                arguments: fields.members["arguments"] ?? .null,
                timeout: try fields.optionalDouble("timeout")))
        case "create":
            return .create(Create(
                id: try fields.id(),
                objectType: try fields.string("objectType"),
                arguments: fields.members["arguments"] ?? .null,
                name: try fields.optionalString("name"),
                reuse: try fields.optionalBool("reuse") ?? false))
        case "lookup":
            return .lookup(Lookup(id: try fields.id(), name: try fields.string("name")))
        case "invoke":
            return .invoke(Invoke(
                id: try fields.id(),
                object: try fields.string("object"),
                method: try fields.string("method"),
                arguments: try fields.optionalArray("arguments") ?? [],
                timeout: try fields.optionalDouble("timeout")))
        case "release":
            return .release(Release(id: try fields.id(), object: try fields.string("object")))
        case "cancel":
            return .cancel(Cancel(id: try fields.id()))
        case "result":
            return .result(Reply(id: try fields.id(), value: fields.members["value"] ?? .null))
        case "error":
            let code = try fields.string("code")
            let path = try fields.optionalArray("path")?.enumerated().map { index, element throws(ProtocolError) in
                guard case .string(let s) = element else {
                    throw Fields.wrongType("path", index: index, expected: "string", got: element)
                }
                return s
            }
            return .error(Failure(
                id: try fields.optionalID(),
                error: ProtocolError(.init(code), try fields.string("message"), path: path),
                errorType: try fields.optionalString("errorType")))
        case "log":
            return .log(Log(
                id: try fields.id(),
                level: try fields.string("level"),
                message: try fields.string("message"),
                source: try fields.optionalString("source"),
                metadata: try fields.optionalStringMap("metadata")))
        case "output":
            let streamName = try fields.string("stream")
            guard let stream = Output.Stream(rawValue: streamName) else {
                throw ProtocolError(.invalidMessage, "field \"stream\" must be \"stdout\" or \"stderr\", not \"\(streamName)\"", path: ["stream"])
            }
            let encoded = try fields.string("data")
            guard let data = Data(base64Encoded: encoded) else {
                throw ProtocolError(.invalidMessage, "field \"data\" must be base64", path: ["data"])
            }
            return .output(Output(id: try fields.id(), stream: stream, data: [UInt8](data)))
        case "ping":
            return .ping(Ping(nonce: try fields.optionalInt("nonce")))
        case "pong":
            return .pong(Ping(nonce: try fields.optionalInt("nonce")))
        case "goodbye":
            return .goodbye(Goodbye(reason: try fields.optionalString("reason")))
        default:
            throw ProtocolError(.unknownType, "unknown message type \"\(type)\"; known types: \(Message.knownTypes.sorted().joined(separator: ", "))", path: ["type"])
        }
    }

    /// This message as a JSON object.
    package var json: JSONValue {
        var members = [String: JSONValue](minimumCapacity: 8)
        forEachMember { members[$0] = $1 }
        return .object(members)
    }

    /// Appends this message's JSON object, written member by member with no dictionary between.
    package func writeJSON(into out: inout [UInt8]) {
        JSONBytes.writeObject(into: &out, forEachMember)
    }

    /// Hands each member of this message's JSON object to `body`, `type` first.
    package func forEachMember(_ body: (String, JSONValue) -> Void) {
        body("type", .string(type))
        func put(_ key: String, _ value: String?) { if let value { body(key, .string(value)) } }
        func put(_ key: String, _ value: Int?) { if let value { body(key, .integer(Int64(value))) } }
        func put(_ key: String, _ value: Double?) { if let value { body(key, .double(value)) } }
        func putAttachments(_ attachments: [Data]) {
            if !attachments.isEmpty { body("attachments", .array(attachments.map { .integer(Int64($0.count)) })) }
        }
        switch self {
        case .hello(let m):
            put("protocol", m.protocolVersion)
            put("nonce", m.nonce.map { Data($0).base64EncodedString() })
            put("proof", m.proof.map { Data($0).base64EncodedString() })
            put("name", m.name)
            put("version", m.version)
            put("build", m.build)
            put("instance", m.instance)
            put("maxFrame", m.maxFrame)
            if m.binary { body("binary", .bool(true)) }
        case .auth(let m):
            put("proof", Data(m.proof).base64EncodedString())
        case .call(let m):
            put("id", m.id)
            put("function", m.function)
            body("arguments", m.arguments)
            put("timeout", m.timeout)
            putAttachments(m.attachments)
        case .create(let m):
            put("id", m.id)
            put("objectType", m.objectType)
            body("arguments", m.arguments)
            put("name", m.name)
            if m.reuse { body("reuse", .bool(true)) }
            putAttachments(m.attachments)
        case .lookup(let m):
            put("id", m.id)
            put("name", m.name)
        case .invoke(let m):
            put("id", m.id)
            put("object", m.object)
            put("method", m.method)
            body("arguments", .array(m.arguments))
            put("timeout", m.timeout)
            putAttachments(m.attachments)
        case .release(let m):
            put("id", m.id)
            put("object", m.object)
        case .cancel(let m):
            put("id", m.id)
        case .result(let m):
            put("id", m.id)
            body("value", m.value)
            putAttachments(m.attachments)
        case .error(let m):
            put("id", m.id)
            put("code", m.error.code.rawValue)
            put("message", m.error.message)
            if let path = m.error.path { body("path", .array(path.map { .string($0) })) }
            put("errorType", m.errorType)
        case .log(let m):
            put("id", m.id)
            put("level", m.level)
            put("message", m.message)
            put("source", m.source)
            if let metadata = m.metadata { body("metadata", .object(metadata.mapValues { .string($0) })) }
        case .output(let m):
            put("id", m.id)
            put("stream", m.stream.rawValue)
            put("data", Data(m.data).base64EncodedString())
        case .ping(let m), .pong(let m):
            put("nonce", m.nonce)
        case .goodbye(let m):
            put("reason", m.reason)
        }
    }

    /// This message as a frame payload (UTF-8 JSON, no length prefix).
    package func encodedPayload() -> [UInt8] {
        // Encoding a JSONValue cannot fail; a non-finite double, which JSON cannot hold, is
        // written as null.
        var out: [UInt8] = []
        writeJSON(into: &out)
        return out
    }

    /// This message as complete frames: its own (length prefix and payload), then one
    /// binary frame per attachment.
    package func encodedFrame() -> [UInt8] {
        guard !attachments.isEmpty else { return JSONBytes.frame { writeJSON(into: &$0) } }
        var bytes: [UInt8] = []
        for piece in framePieces() { piece.append(to: &bytes) }
        return bytes
    }

    /// The same bytes as `encodedFrame()`, in pieces that a writer can send one after the
    /// other without joining them: the message's frame, then each attachment's 4-byte length
    /// prefix and its bytes, the latter in the `Data` they are held in (not copied).
    package func framePieces() -> [FramePiece] {
        var pieces: [FramePiece] = [.bytes(JSONBytes.frame { writeJSON(into: &$0) })]
        for attachment in attachments {
            var prefix: [UInt8] = []
            Frame.appendPrefix(UInt32(attachment.count), to: &prefix)
            pieces += [.bytes(prefix), .data(attachment)]
        }
        return pieces
    }
}

/// Reads typed fields out of a message object, with errors that name the field.
struct Fields {
    let members: [String: JSONValue]

    static func wrongType(_ key: String, index: Int? = nil, expected: String, got: JSONValue) -> ProtocolError {
        let path = index.map { [key, String($0)] } ?? [key]
        return ProtocolError(.invalidMessage, "field \"\(path.joined(separator: "."))\" must be \(expected), not \(got.typeName)", path: path)
    }

    func required(_ key: String) throws(ProtocolError) -> JSONValue {
        guard let value = members[key], value != .null else {
            let type = members["type"].flatMap { if case .string(let t) = $0 { t } else { nil } }
            let context = type.map { "a \"\($0)\" message" } ?? "a message"
            throw ProtocolError(.invalidMessage, "\(context) needs the field \"\(key)\"", path: [key])
        }
        return value
    }

    func string(_ key: String) throws(ProtocolError) -> String {
        let value = try required(key)
        guard case .string(let s) = value else { throw Self.wrongType(key, expected: "a string", got: value) }
        return s
    }

    func optionalString(_ key: String) throws(ProtocolError) -> String? {
        guard let value = members[key], value != .null else { return nil }
        guard case .string(let s) = value else { throw Self.wrongType(key, expected: "a string", got: value) }
        return s
    }

    func base64(_ key: String) throws(ProtocolError) -> [UInt8] {
        let text = try string(key)
        guard let data = Data(base64Encoded: text) else {
            throw ProtocolError(.invalidMessage, "field \"\(key)\" must be base64", path: [key])
        }
        return [UInt8](data)
    }

    func optionalBase64(_ key: String) throws(ProtocolError) -> [UInt8]? {
        guard let value = members[key], value != .null else { return nil }
        return try base64(key)
    }

    func int(_ key: String, minimum: Int = Int.min) throws(ProtocolError) -> Int {
        try Self.int(key, try required(key), minimum: minimum)
    }

    func optionalInt(_ key: String, minimum: Int = Int.min) throws(ProtocolError) -> Int? {
        guard let value = members[key], value != .null else { return nil }
        return try Self.int(key, value, minimum: minimum)
    }

    private static func int(_ key: String, _ value: JSONValue, minimum: Int) throws(ProtocolError) -> Int {
        let result: Int
        switch value {
        case .integer(let i): result = Int(i)
        case .double(let d) where d.rounded() == d && abs(d) < 9.0e15: result = Int(d)
        default: throw wrongType(key, expected: "an integer", got: value)
        }
        guard result >= minimum else {
            throw ProtocolError(.invalidMessage, "field \"\(key)\" must be at least \(minimum), not \(result)", path: [key])
        }
        return result
    }

    /// A request id: an integer from 0 to 2^53 − 1, so every JSON implementation holds it exactly.
    func id() throws(ProtocolError) -> Int {
        let id = try int("id", minimum: 0)
        guard id <= 9_007_199_254_740_991 else {
            throw ProtocolError(.invalidMessage, "field \"id\" must be at most 2^53 - 1", path: ["id"])
        }
        return id
    }

    /// An optional request id (an `error` about the whole connection has none), with the
    /// same range as `id()`.
    func optionalID() throws(ProtocolError) -> Int? {
        guard let value = members["id"], value != .null else { return nil }
        return try id()
    }

    func optionalDouble(_ key: String) throws(ProtocolError) -> Double? {
        guard let value = members[key], value != .null else { return nil }
        switch value {
        case .integer(let i): return Double(i)
        case .double(let d): return d
        default: throw Self.wrongType(key, expected: "a number", got: value)
        }
    }

    func optionalBool(_ key: String) throws(ProtocolError) -> Bool? {
        guard let value = members[key], value != .null else { return nil }
        guard case .bool(let b) = value else { throw Self.wrongType(key, expected: "a boolean", got: value) }
        return b
    }

    func optionalArray(_ key: String) throws(ProtocolError) -> [JSONValue]? {
        guard let value = members[key], value != .null else { return nil }
        guard case .array(let a) = value else { throw Self.wrongType(key, expected: "an array", got: value) }
        return a
    }

    func optionalStringMap(_ key: String) throws(ProtocolError) -> [String: String]? {
        guard let value = members[key], value != .null else { return nil }
        guard case .object(let o) = value else { throw Self.wrongType(key, expected: "an object", got: value) }
        var result: [String: String] = [:]
        for (k, v) in o {
            guard case .string(let s) = v else {
                throw ProtocolError(.invalidMessage, "field \"\(key).\(k)\" must be a string, not \(v.typeName)", path: [key, k])
            }
            result[k] = s
        }
        return result
    }
}

extension Message {
    /// The id an `error` answering an undecodable message carries: the object's `id` when it
    /// is an integer from 0 to 2^53 − 1, else nil (PROTOCOL.md, "Bad input").
    package static func echoedRequestID(in value: JSONValue) -> Int? {
        let largest: Int64 = 9_007_199_254_740_991
        switch value["id"] {
        case .integer(let i)? where (0...largest).contains(i): return Int(i)
        case .double(let d)? where d >= 0 && d <= Double(largest) && d.rounded() == d: return Int(d)
        default: return nil
        }
    }
}

extension Message {
    /// Any JSON value as compact UTF-8 JSON text.
    package static func jsonText(_ value: JSONValue) -> [UInt8] {
        JSONBytes.bytes(value)
    }
}
