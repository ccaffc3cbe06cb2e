import Foundation
import YonderProtocol

/// What a receiver made of one frame, or of the end of the stream.
enum ReceivedOutcome: Equatable, CustomStringConvertible {
    case message(Message)
    case error(ProtocolError, fatal: Bool, id: Int?)

    var description: String {
        switch self {
        case .message(let m): "message \(m.json)"
        case .error(let e, let fatal, let id): "error \(e.code.rawValue) path=\(e.path ?? []) fatal=\(fatal) id=\(id.map(String.init) ?? "none")"
        }
    }
}

/// Plays a vector's bytes into the Swift implementation the way a receiver of PROTOCOL.md
/// must: frames through `FrameDecoder`, payloads through `Message.decode(payload:)`, and for
/// an agent every message through `AgentHandshake`.
struct VectorReplay {
    static let largestID: Int64 = 9_007_199_254_740_991

    /// The errors that always close the connection.
    static let framingCodes: Set<ProtocolError.Code> = [
        .emptyFrame, .frameTooLarge, .truncatedFrame, .invalidUTF8, .invalidJSON, .notAnObject, .invalidAttachment,
    ]

    let vector: ProtocolVector

    /// Replays the bytes delivered in pieces of at most `pieceSize` bytes (nil: all at once).
    func run(pieceSize: Int?) -> [ReceivedOutcome] {
        var decoder = MessageReader(maximumLength: vector.maxFrame)
        var handshake = AgentHandshake(token: vector.token, agentNonce: vector.agentNonce)
        if vector.state == .established {
            let nonce = ProtocolVector.defaultClientNonce
            try? handshake.receive(.hello(.init(nonce: nonce)))
            try? handshake.receive(.auth(.init(proof: HandshakeProof.client(token: vector.token, clientNonce: nonce, agentNonce: vector.agentNonce))))
        }
        var outcomes: [ReceivedOutcome] = []
        let size = pieceSize ?? max(vector.bytes.count, 1)
        var offset = 0
        repeat {
            let end = min(offset + size, vector.bytes.count)
            decoder.append(vector.bytes[offset..<end])
            offset = end
            while true {
                // An agent takes attachments only once the handshake is done.
                decoder.acceptsAttachments = vector.binary && (vector.role == .client || handshake.state == .established)
                let next: (object: JSONValue, attachments: [Data])?
                do {
                    next = try decoder.next()
                } catch {
                    outcomes.append(.error(error, fatal: true, id: nil))
                    return outcomes
                }
                guard let (object, attachments) = next else { break }
                let outcome = receive(object, attachments: attachments, handshake: &handshake)
                outcomes.append(outcome)
                if case .error(_, fatal: true, _) = outcome { return outcomes }
            }
        } while offset < vector.bytes.count
        do {
            try decoder.finish()
        } catch {
            outcomes.append(.error(error, fatal: true, id: nil))
        }
        return outcomes
    }

    private func receive(_ object: JSONValue, attachments: [Data], handshake: inout AgentHandshake) -> ReceivedOutcome {
        do {
            let message = try Message.decode(object).with(attachments: attachments)
            if vector.role == .agent { try handshake.receive(message) }
            return .message(message)
        } catch {
            let fatal = Self.framingCodes.contains(error.code)
                || (vector.role == .agent && handshake.state != .established)
            return .error(error, fatal: fatal, id: fatal ? nil : Message.echoedRequestID(in: object))
        }
    }
}

/// JSON equality in which 1 and 1.0 are the same number, as JSON itself has it.
func sameJSON(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case (.integer(let x), .double(let y)), (.double(let y), .integer(let x)): return Double(x) == y
    case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { sameJSON($0, $1) }
    case (.object(let x), .object(let y)):
        return x.count == y.count && x.allSatisfy { key, value in y[key].map { sameJSON(value, $0) } ?? false }
    default: return a == b
    }
}

/// Why `actual` does not match the canonical JSON `expected`, or nil when it does.
///
/// `expected` must decode to the same message, hold every member the Swift encoder writes
/// with the same value, and any further member must be one whose value is its default.
func mismatch(_ actual: Message, expected: JSONValue) -> String? {
    let expectedMessage: Message
    do {
        expectedMessage = try expectedMessageOf(expected)
    } catch {
        return "the expected JSON does not decode: \(error)"
    }
    if expectedMessage != actual {
        return "decoded \(actual.json), expected \(expected)"
    }
    guard case .object(var written) = actual.json, case .object(var canonical) = expected else {
        return "messages are objects"
    }
    // Attachments were compared with the messages: as bytes, not as the lengths on the wire.
    written["attachments"] = nil
    canonical["attachments"] = nil
    for (key, value) in written {
        guard let expectedValue = canonical[key], sameJSON(value, expectedValue) else {
            return "member \"\(key)\": decoded \(value), expected \(canonical[key].map { "\($0)" } ?? "nothing")"
        }
    }
    for key in canonical.keys where written[key] == nil {
        let value = canonical.removeValue(forKey: key)
        if (try? Message.decode(.object(canonical))) != actual {
            return "member \"\(key)\" (\(value.map { "\($0)" } ?? "")) is not written by the encoder and is not a default"
        }
        canonical[key] = value
    }
    return nil
}

/// The message an expected outcome describes, its `attachments` (base64 in vectors) included.
func expectedMessageOf(_ json: JSONValue) throws -> Message {
    let message = try Message.decode(json)
    guard case .array(let encoded)? = json["attachments"] else { return message }
    let attachments = try encoded.map { item -> Data in
        guard case .string(let text) = item, let data = Data(base64Encoded: text) else {
            throw VectorFormatError(description: "an expected message's attachments must be base64 strings")
        }
        return data
    }
    return message.with(attachments: attachments)
}
