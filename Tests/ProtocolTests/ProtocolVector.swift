import Foundation
import TestSupport
import Testing
import YonderProtocol

/// One test vector from protocol/vectors (README.md there describes the format).
struct ProtocolVector: Sendable, CustomTestStringConvertible {
    /// Who receives the bytes.
    enum Role: String, Sendable {
        case agent, client
    }

    /// What the receiver must make of one frame (or of the end of the stream).
    enum Expectation: Sendable {
        case message(JSONValue)
        case error(code: String, path: [String]?, fatal: Bool, id: Int?)
    }

    var file: String
    var name: String
    var bytes: [UInt8]
    var role: Role
    var state: AgentHandshake.State
    var token: String
    /// The agent's nonce in the handshake (context.agentNonce, base64).
    var agentNonce: [UInt8]
    var maxFrame: Int
    /// Whether the receiver accepts binary attachments (context.binary).
    var binary: Bool
    var expectations: [Expectation]

    var testDescription: String { "\(file): \(name)" }

    /// The nonces the handshake vectors use unless their context says otherwise.
    static let defaultClientNonce = [UInt8](0x01...0x20)
    static let defaultAgentNonce = [UInt8](0x41...0x60)
}

/// A vector file or vector that does not follow the format.
struct VectorFormatError: Error, CustomStringConvertible {
    var description: String
}

enum VectorCatalog {
    static var vectorsFolder: URL { RepositoryPaths.protocolFolder.appendingPathComponent("vectors") }
    static var schemaFolder: URL { RepositoryPaths.protocolFolder.appendingPathComponent("schema") }

    /// Every vector of every file, or why they could not be read.
    static let loaded: Result<[ProtocolVector], VectorFormatError> = Result { () throws(VectorFormatError) in
        try loadAll()
    }

    /// The vectors, for parameterized tests; a loading failure is reported by `VectorFileTests`.
    static var all: [ProtocolVector] { (try? loaded.get()) ?? [] }

    /// The `.json` files directly in protocol/vectors.
    static func vectorFiles() throws(VectorFormatError) -> [URL] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: vectorsFolder.path)
        } catch {
            throw VectorFormatError(description: "cannot list \(vectorsFolder.path): \(error)")
        }
        return names.filter { $0.hasSuffix(".json") }.sorted().map { vectorsFolder.appendingPathComponent($0) }
    }

    static func readJSON(_ url: URL) throws(VectorFormatError) -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: url))
        } catch {
            throw VectorFormatError(description: "\(url.lastPathComponent) is not valid JSON: \(error)")
        }
    }

    private static func loadAll() throws(VectorFormatError) -> [ProtocolVector] {
        var vectors: [ProtocolVector] = []
        for url in try vectorFiles() {
            let file = url.lastPathComponent
            guard case .object(let root) = try readJSON(url), case .array(let items)? = root["vectors"] else {
                throw VectorFormatError(description: "\(file): expected an object with a \"vectors\" array")
            }
            for (index, item) in items.enumerated() {
                do throws(VectorFormatError) {
                    vectors.append(try parse(item, file: file))
                } catch {
                    throw VectorFormatError(description: "\(file), vector \(index): \(error.description)")
                }
            }
        }
        return vectors
    }

    private static func parse(_ item: JSONValue, file: String) throws(VectorFormatError) -> ProtocolVector {
        let fields = try object(item, allowed: ["name", "description", "context", "hex", "expect"])
        let name = try string(fields["name"], "name")
        _ = try string(fields["description"], "description")
        let bytes = try hex(try string(fields["hex"], "hex"))

        var role = ProtocolVector.Role.agent
        var state = AgentHandshake.State.established
        var token = "s3cret"
        var agentNonce = ProtocolVector.defaultAgentNonce
        var maxFrame = Frame.defaultMaximumLength
        var binary = false
        if let context = fields["context"] {
            let c = try object(context, allowed: ["role", "state", "token", "agentNonce", "maxFrame", "binary"])
            if let value = c["binary"] {
                guard case .bool(let flag) = value else { throw VectorFormatError(description: "context.binary must be a boolean") }
                binary = flag
            }
            if let value = c["agentNonce"] {
                guard let data = Data(base64Encoded: try string(value, "context.agentNonce")) else {
                    throw VectorFormatError(description: "context.agentNonce must be base64")
                }
                agentNonce = [UInt8](data)
            }
            if let value = c["role"] {
                guard let r = ProtocolVector.Role(rawValue: try string(value, "context.role")) else {
                    throw VectorFormatError(description: "context.role must be agent or client")
                }
                role = r
            }
            if let value = c["state"] {
                switch try string(value, "context.state") {
                case "awaiting_hello": state = .awaitingHello
                case "established": state = .established
                default: throw VectorFormatError(description: "context.state must be awaiting_hello or established")
                }
            }
            if let value = c["token"] { token = try string(value, "context.token") }
            if let value = c["maxFrame"] { maxFrame = try integer(value, "context.maxFrame") }
        }
        if role == .client && state == .awaitingHello {
            throw VectorFormatError(description: "client vectors start after the handshake")
        }

        guard case .array(let outcomes)? = fields["expect"], !outcomes.isEmpty else {
            throw VectorFormatError(description: "expect must be a non-empty array")
        }
        var expectations: [ProtocolVector.Expectation] = []
        for outcome in outcomes {
            let o = try object(outcome, allowed: ["message", "error"])
            switch (o["message"], o["error"]) {
            case (let message?, nil):
                expectations.append(.message(message))
            case (nil, let error?):
                let e = try object(error, allowed: ["code", "path", "fatal", "id"])
                let path: [String]?
                switch e["path"] {
                case nil: path = nil
                case .array(let elements)?: path = try elements.map { (element) throws(VectorFormatError) in try string(element, "error.path") }
                default: throw VectorFormatError(description: "error.path must be an array of strings")
                }
                guard case .bool(let fatal)? = e["fatal"] else {
                    throw VectorFormatError(description: "error.fatal must be a boolean")
                }
                expectations.append(.error(
                    code: try string(e["code"], "error.code"), path: path, fatal: fatal,
                    id: try e["id"].map { (id) throws(VectorFormatError) in try integer(id, "error.id") }))
            default:
                throw VectorFormatError(description: "each outcome holds exactly one of message and error")
            }
        }
        return ProtocolVector(
            file: file, name: name, bytes: bytes, role: role, state: state, token: token, agentNonce: agentNonce, maxFrame: maxFrame,
            binary: binary, expectations: expectations)
    }

    private static func object(_ value: JSONValue, allowed: Set<String>) throws(VectorFormatError) -> [String: JSONValue] {
        guard case .object(let members) = value else { throw VectorFormatError(description: "expected an object") }
        let unknown = Set(members.keys).subtracting(allowed)
        guard unknown.isEmpty else {
            throw VectorFormatError(description: "unknown member(s) \(unknown.sorted()); allowed: \(allowed.sorted())")
        }
        return members
    }

    private static func string(_ value: JSONValue?, _ what: String) throws(VectorFormatError) -> String {
        guard case .string(let s)? = value else { throw VectorFormatError(description: "\(what) must be a string") }
        return s
    }

    private static func integer(_ value: JSONValue, _ what: String) throws(VectorFormatError) -> Int {
        guard case .integer(let i) = value else { throw VectorFormatError(description: "\(what) must be an integer") }
        return Int(i)
    }

    private static func hex(_ text: String) throws(VectorFormatError) -> [UInt8] {
        let digits = Array(text.utf8)
        guard digits.count.isMultiple(of: 2) else { throw VectorFormatError(description: "hex has an odd number of digits") }
        func nibble(_ c: UInt8) throws(VectorFormatError) -> UInt8 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            default: throw VectorFormatError(description: "hex must be lowercase hexadecimal digits")
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for i in stride(from: 0, to: digits.count, by: 2) {
            bytes.append(try nibble(digits[i]) << 4 | nibble(digits[i + 1]))
        }
        return bytes
    }
}
