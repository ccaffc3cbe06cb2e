#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif

/// Encodes an `Encodable` straight into a `JSONValue`, with no JSON text between them.
///
/// The result is what `JSONEncoder` with its default strategies would write, parsed by
/// `JSONBytes.parse`: `Data` as base64 (or an attachment reference), `URL` as its absolute
/// string, `Decimal` and `Float` as the numbers their text gives, `Date` as seconds since
/// 2001, a value that encodes nothing as `{}` (and an error at the top level), non-finite
/// numbers refused. Tests hold it to that, value by value.
struct JSONValueEncoder {
    /// Collects every non-empty `Data` as an attachment when set (PROTOCOL.md section 3).
    let attachments: JSONBytes.AttachmentBox?

    func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        guard let result = try encoded(value, at: []) else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "Top-level \(T.self) did not encode any values."))
        }
        return result
    }

    /// `value` as a JSON value, encoded at `path`; nil when it encoded nothing.
    func encoded<T: Encodable>(_ value: T, at path: [any CodingKey]) throws -> JSONValue? {
        if let direct = try direct(value, path: path) { return direct }
        let encoder = TreeEncoder(attachments: attachments, codingPath: path)
        try value.encode(to: encoder)
        return encoder.storage.value
    }

    /// The value of a type the encoder writes itself, or nil for any other type.
    func direct<T: Encodable>(_ value: T, path: @autoclosure () -> [any CodingKey]) throws -> JSONValue? {
        if T.self == String.self { return .string(unsafeBitCast(value, to: String.self)) }
        if T.self == Int.self { return .integer(Int64(unsafeBitCast(value, to: Int.self))) }
        if T.self == Double.self { return try JSONValueEncoder.double(unsafeBitCast(value, to: Double.self), path: path()) }
        if T.self == Bool.self { return .bool(unsafeBitCast(value, to: Bool.self)) }
        if T.self == JSONValue.self { return try JSONValueEncoder.normalized(value as! JSONValue, path: path()) }
        if T.self == Data.self { return data(value as! Data) }
        if T.self == Int64.self { return .integer(unsafeBitCast(value, to: Int64.self)) }
        if T.self == URL.self { return .string((value as! URL).absoluteString) }
        if T.self == Decimal.self {
            let decimal = value as! Decimal
            guard !decimal.isNaN else {
                throw EncodingError.invalidValue(decimal, .init(codingPath: path(), debugDescription: "Unable to encode Decimal.nan directly in JSON."))
            }
            return JSONValueEncoder.number(decimal.description)
        }
        return nil
    }

    private func data(_ data: Data) -> JSONValue {
        guard let attachments, !data.isEmpty else { return .string(data.base64EncodedString()) }
        return .object([JSONBytes.AttachmentKey.attachment.stringValue: .integer(Int64(attachments.append(data)))])
    }

    /// JSONEncoder writes a double as its `description` without a trailing `.0`, so a whole
    /// number up to 2^53 (which `description` writes without an exponent) reads back as an
    /// integer.
    static func double(_ value: Double, path: [any CodingKey]) throws -> JSONValue {
        guard value.isFinite else {
            throw EncodingError.invalidValue(value, .init(codingPath: path, debugDescription: "Unable to encode Double.\(value) directly in JSON."))
        }
        if value.magnitude <= 0x1p53, let whole = Int64(exactly: value) { return .integer(whole) }
        return .double(value)
    }

    /// A float as JSONEncoder writes it (its shortest text, without a trailing `.0`), read as
    /// JSON reads that text.
    static func float(_ value: Float, path: [any CodingKey]) throws -> JSONValue {
        guard value.isFinite else {
            throw EncodingError.invalidValue(value, .init(codingPath: path, debugDescription: "Unable to encode Float.\(value) directly in JSON."))
        }
        if value.magnitude <= 0x1p24, let whole = Int64(exactly: value) { return .integer(whole) }
        return number(value.description)
    }

    /// A JSON value as its own `encode(to:)` comes out of JSONEncoder: whole doubles as
    /// integers (see `double`), non-finite ones refused.
    static func normalized(_ value: JSONValue, path: [any CodingKey]) throws -> JSONValue {
        switch value {
        case .double(let number): try double(number, path: path)
        case .array(let elements): .array(try elements.map { try normalized($0, path: path) })
        case .object(let members): .object(try members.mapValues { try normalized($0, path: path) })
        default: value
        }
    }

    static func integer<T: FixedWidthInteger>(_ value: T) -> JSONValue {
        if let exact = Int64(exactly: value) { return .integer(exact) }
        return number(String(value))
    }

    /// A number as `JSONBytes.parse` reads its text.
    static func number(_ text: String) -> JSONValue {
        (try? JSONBytes.parse(Array(text.utf8))) ?? .double(Double(text) ?? 0)
    }
}

/// What an encoder or container has been given so far.
final class TreeStorage {
    enum Slot {
        case empty
        case value(JSONValue)
        case object(TreeObject)
        case array(TreeArray)
        case encoder(TreeEncoder)
    }
    var slot = Slot.empty

    var value: JSONValue? {
        switch slot {
        case .empty: nil
        case .value(let value): value
        case .object(let object): object.value
        case .array(let array): array.value
        case .encoder(let encoder): encoder.storage.value
        }
    }
}

/// An object being encoded: members set as values, and nested containers and encoders that
/// are resolved when the object is.
final class TreeObject {
    var members: [String: JSONValue] = [:]
    var nested: [String: TreeStorage] = [:]

    func set(_ key: String, _ value: JSONValue) {
        if !nested.isEmpty { nested[key] = nil }
        members[key] = value
    }

    func nest(_ key: String, _ slot: TreeStorage.Slot) -> TreeStorage {
        let storage = TreeStorage()
        storage.slot = slot
        members[key] = nil
        nested[key] = storage
        return storage
    }

    var value: JSONValue {
        guard !nested.isEmpty else { return .object(members) }
        var all = members
        for (key, storage) in nested { all[key] = storage.value ?? .object([:]) }
        return .object(all)
    }
}

/// An array being encoded; nested containers keep their places.
final class TreeArray {
    var elements: [JSONValue] = []
    var nested: [(index: Int, storage: TreeStorage)] = []

    func nest(_ slot: TreeStorage.Slot) {
        let storage = TreeStorage()
        storage.slot = slot
        nested.append((elements.count, storage))
        elements.append(.null)
    }

    var value: JSONValue {
        guard !nested.isEmpty else { return .array(elements) }
        var all = elements
        for (index, storage) in nested { all[index] = storage.value ?? .object([:]) }
        return .array(all)
    }
}

/// The key of an array element, or of `super`.
struct TreeKey: CodingKey {
    let stringValue: String
    let intValue: Int?
    init(stringValue: String) {
        self.stringValue = stringValue
        self.intValue = nil
    }
    init(intValue: Int) {
        self.stringValue = "Index \(intValue)"
        self.intValue = intValue
    }
    static let `super` = TreeKey(stringValue: "super")
}

final class TreeEncoder: Encoder, SingleValueEncodingContainer {
    let attachments: JSONBytes.AttachmentBox?
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }
    let storage = TreeStorage()

    init(attachments: JSONBytes.AttachmentBox?, codingPath: [any CodingKey]) {
        self.attachments = attachments
        self.codingPath = codingPath
    }

    /// `value` as a JSON value, encoded at `path` + `key`.
    func box<T: Encodable>(_ value: T, path: [any CodingKey], key: any CodingKey) throws -> JSONValue {
        try JSONValueEncoder(attachments: attachments).encoded(value, at: path + [key]) ?? .object([:])
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let object: TreeObject
        if case .object(let existing) = storage.slot {
            object = existing
        } else {
            object = TreeObject()
            storage.slot = .object(object)
        }
        return KeyedEncodingContainer(TreeKeyedEncoder(encoder: self, object: object, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let array: TreeArray
        if case .array(let existing) = storage.slot {
            array = existing
        } else {
            array = TreeArray()
            storage.slot = .array(array)
        }
        return TreeUnkeyedEncoder(encoder: self, array: array, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { self }

    // MARK: Single value

    func encodeNil() { storage.slot = .value(.null) }
    func encode(_ value: Bool) { storage.slot = .value(.bool(value)) }
    func encode(_ value: String) { storage.slot = .value(.string(value)) }
    func encode(_ value: Double) throws { storage.slot = .value(try JSONValueEncoder.double(value, path: codingPath)) }
    func encode(_ value: Float) throws { storage.slot = .value(try JSONValueEncoder.float(value, path: codingPath)) }
    func encode(_ value: Int) { storage.slot = .value(.integer(Int64(value))) }
    func encode(_ value: Int8) { storage.slot = .value(.integer(Int64(value))) }
    func encode(_ value: Int16) { storage.slot = .value(.integer(Int64(value))) }
    func encode(_ value: Int32) { storage.slot = .value(.integer(Int64(value))) }
    func encode(_ value: Int64) { storage.slot = .value(.integer(value)) }
    func encode(_ value: UInt) { storage.slot = .value(JSONValueEncoder.integer(value)) }
    func encode(_ value: UInt8) { storage.slot = .value(.integer(Int64(value))) }
    func encode(_ value: UInt16) { storage.slot = .value(.integer(Int64(value))) }
    func encode(_ value: UInt32) { storage.slot = .value(.integer(Int64(value))) }
    func encode(_ value: UInt64) { storage.slot = .value(JSONValueEncoder.integer(value)) }
    @available(macOS 15.0, *) func encode(_ value: Int128) { storage.slot = .value(JSONValueEncoder.integer(value)) }
    @available(macOS 15.0, *) func encode(_ value: UInt128) { storage.slot = .value(JSONValueEncoder.integer(value)) }

    func encode<T: Encodable>(_ value: T) throws {
        // The value's own encoding goes into this encoder's place (nothing, if it encoded nothing).
        storage.slot = try JSONValueEncoder(attachments: attachments).encoded(value, at: codingPath).map { .value($0) } ?? .empty
    }
}

struct TreeKeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let encoder: TreeEncoder
    let object: TreeObject
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) { object.set(key.stringValue, .null) }
    mutating func encode(_ value: Bool, forKey key: Key) { object.set(key.stringValue, .bool(value)) }
    mutating func encode(_ value: String, forKey key: Key) { object.set(key.stringValue, .string(value)) }
    mutating func encode(_ value: Double, forKey key: Key) throws {
        object.set(key.stringValue, try JSONValueEncoder.double(value, path: codingPath + [key]))
    }
    mutating func encode(_ value: Float, forKey key: Key) throws {
        object.set(key.stringValue, try JSONValueEncoder.float(value, path: codingPath + [key]))
    }
    mutating func encode(_ value: Int, forKey key: Key) { object.set(key.stringValue, .integer(Int64(value))) }
    mutating func encode(_ value: Int8, forKey key: Key) { object.set(key.stringValue, .integer(Int64(value))) }
    mutating func encode(_ value: Int16, forKey key: Key) { object.set(key.stringValue, .integer(Int64(value))) }
    mutating func encode(_ value: Int32, forKey key: Key) { object.set(key.stringValue, .integer(Int64(value))) }
    mutating func encode(_ value: Int64, forKey key: Key) { object.set(key.stringValue, .integer(value)) }
    mutating func encode(_ value: UInt, forKey key: Key) { object.set(key.stringValue, JSONValueEncoder.integer(value)) }
    mutating func encode(_ value: UInt8, forKey key: Key) { object.set(key.stringValue, .integer(Int64(value))) }
    mutating func encode(_ value: UInt16, forKey key: Key) { object.set(key.stringValue, .integer(Int64(value))) }
    mutating func encode(_ value: UInt32, forKey key: Key) { object.set(key.stringValue, .integer(Int64(value))) }
    mutating func encode(_ value: UInt64, forKey key: Key) { object.set(key.stringValue, JSONValueEncoder.integer(value)) }
    @available(macOS 15.0, *) mutating func encode(_ value: Int128, forKey key: Key) { object.set(key.stringValue, JSONValueEncoder.integer(value)) }
    @available(macOS 15.0, *) mutating func encode(_ value: UInt128, forKey key: Key) { object.set(key.stringValue, JSONValueEncoder.integer(value)) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        object.set(key.stringValue, try encoder.box(value, path: codingPath, key: key))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let nested = TreeObject()
        _ = object.nest(key.stringValue, .object(nested))
        return KeyedEncodingContainer(TreeKeyedEncoder<NestedKey>(encoder: encoder, object: nested, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = TreeArray()
        _ = object.nest(key.stringValue, .array(nested))
        return TreeUnkeyedEncoder(encoder: encoder, array: nested, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { superEncoder(named: TreeKey.super) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { superEncoder(named: key) }

    private func superEncoder(named key: any CodingKey) -> any Encoder {
        let sub = TreeEncoder(attachments: encoder.attachments, codingPath: codingPath + [key])
        _ = object.nest(key.stringValue, .encoder(sub))
        return sub
    }
}

struct TreeUnkeyedEncoder: UnkeyedEncodingContainer {
    let encoder: TreeEncoder
    let array: TreeArray
    let codingPath: [any CodingKey]
    var count: Int { array.elements.count }

    private var nextKey: TreeKey { TreeKey(intValue: array.elements.count) }

    mutating func encodeNil() { array.elements.append(.null) }
    mutating func encode(_ value: Bool) { array.elements.append(.bool(value)) }
    mutating func encode(_ value: String) { array.elements.append(.string(value)) }
    mutating func encode(_ value: Double) throws { array.elements.append(try JSONValueEncoder.double(value, path: codingPath + [nextKey])) }
    mutating func encode(_ value: Float) throws { array.elements.append(try JSONValueEncoder.float(value, path: codingPath + [nextKey])) }
    mutating func encode(_ value: Int) { array.elements.append(.integer(Int64(value))) }
    mutating func encode(_ value: Int8) { array.elements.append(.integer(Int64(value))) }
    mutating func encode(_ value: Int16) { array.elements.append(.integer(Int64(value))) }
    mutating func encode(_ value: Int32) { array.elements.append(.integer(Int64(value))) }
    mutating func encode(_ value: Int64) { array.elements.append(.integer(value)) }
    mutating func encode(_ value: UInt) { array.elements.append(JSONValueEncoder.integer(value)) }
    mutating func encode(_ value: UInt8) { array.elements.append(.integer(Int64(value))) }
    mutating func encode(_ value: UInt16) { array.elements.append(.integer(Int64(value))) }
    mutating func encode(_ value: UInt32) { array.elements.append(.integer(Int64(value))) }
    mutating func encode(_ value: UInt64) { array.elements.append(JSONValueEncoder.integer(value)) }
    @available(macOS 15.0, *) mutating func encode(_ value: Int128) { array.elements.append(JSONValueEncoder.integer(value)) }
    @available(macOS 15.0, *) mutating func encode(_ value: UInt128) { array.elements.append(JSONValueEncoder.integer(value)) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        let element = try encoder.box(value, path: codingPath, key: nextKey)
        array.elements.append(element)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let path = codingPath + [nextKey]
        let nested = TreeObject()
        array.nest(.object(nested))
        return KeyedEncodingContainer(TreeKeyedEncoder<NestedKey>(encoder: encoder, object: nested, codingPath: path))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let path = codingPath + [nextKey]
        let nested = TreeArray()
        array.nest(.array(nested))
        return TreeUnkeyedEncoder(encoder: encoder, array: nested, codingPath: path)
    }

    mutating func superEncoder() -> any Encoder {
        let sub = TreeEncoder(attachments: encoder.attachments, codingPath: codingPath + [nextKey])
        array.nest(.encoder(sub))
        return sub
    }
}
