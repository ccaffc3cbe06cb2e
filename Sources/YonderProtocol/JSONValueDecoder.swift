#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif

/// Decodes a `Decodable` straight from a `JSONValue`, with no JSON text between them.
///
/// It accepts what `JSONDecoder` with its default strategies accepts from the text that
/// `JSONBytes.write` makes of the value, and refuses the rest with the same kind of
/// `DecodingError` at the same coding path: integers from whole numbers that fit (`1.0`, `1e2`),
/// `Float` only within its range, `Data` from base64 (or an attachment reference when the
/// message has attachments), `URL` from a string it parses, `Decimal` from a number. Tests hold
/// it to that, value by value.
struct JSONValueDecoder {
    let attachments: [Data]
    /// Whether a `Data` may be an attachment reference (the message came with attachments).
    let readsAttachments: Bool

    func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try TreeDecoder(value: value, codingPath: [], coding: self).unbox(value, as: T.self, path: [], key: nil)
    }
}

final class TreeDecoder: Decoder, SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [any CodingKey]
    let coding: JSONValueDecoder
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(value: JSONValue, codingPath: [any CodingKey], coding: JSONValueDecoder) {
        // A non-finite number is written as null, so it reads as one.
        if case .double(let number) = value, !number.isFinite {
            self.value = .null
        } else {
            self.value = value
        }
        self.codingPath = codingPath
        self.coding = coding
    }

    // MARK: Reading one value

    /// `value` as `T`, at `path` + `key`.
    func unbox<T: Decodable>(_ value: JSONValue, as type: T.Type, path: [any CodingKey], key: (any CodingKey)?) throws -> T {
        if T.self == String.self { return unsafeBitCast(try string(value, path: path, key: key), to: T.self) }
        if T.self == Int.self { return unsafeBitCast(try integer(value, as: Int.self, path: path, key: key), to: T.self) }
        if T.self == Double.self { return unsafeBitCast(try double(value, path: path, key: key), to: T.self) }
        if T.self == Bool.self { return unsafeBitCast(try bool(value, path: path, key: key), to: T.self) }
        if T.self == JSONValue.self { return TreeDecoder.normalized(value) as! T }
        if T.self == Int64.self { return unsafeBitCast(try integer(value, as: Int64.self, path: path, key: key), to: T.self) }
        if T.self == Data.self { return try data(value, path: path, key: key) as! T }
        if T.self == URL.self { return try url(value, path: path, key: key) as! T }
        if T.self == Decimal.self { return try decimal(value, path: path, key: key) as! T }
        let decoder = key.map { TreeDecoder(value: value, codingPath: path + [$0], coding: coding) } ?? self
        return try T(from: decoder)
    }

    private static func extend(_ path: [any CodingKey], _ key: (any CodingKey)?) -> [any CodingKey] {
        key.map { path + [$0] } ?? path
    }

    private func mismatch(_ type: Any.Type, _ value: JSONValue, path: [any CodingKey], key: (any CodingKey)?) -> DecodingError {
        let at = Self.extend(path, key)
        if Self.isNull(value) {
            return .valueNotFound(type, .init(codingPath: at, debugDescription: "Cannot get value of type \(type) -- found null value instead"))
        }
        return .typeMismatch(type, .init(codingPath: at, debugDescription: "Expected to decode \(type) but found \(value.typeName) instead."))
    }

    static func isNull(_ value: JSONValue) -> Bool {
        switch value {
        case .null: true
        case .double(let number): !number.isFinite
        default: false
        }
    }

    func string(_ value: JSONValue, path: [any CodingKey], key: (any CodingKey)?) throws -> String {
        guard case .string(let string) = value else { throw mismatch(String.self, value, path: path, key: key) }
        return string
    }

    func bool(_ value: JSONValue, path: [any CodingKey], key: (any CodingKey)?) throws -> Bool {
        guard case .bool(let bool) = value else {
            // JSONDecoder calls a null where a Bool should be a type mismatch, unlike the others.
            throw DecodingError.typeMismatch(Bool.self, .init(
                codingPath: Self.extend(path, key), debugDescription: "Expected to decode Bool but found \(value.typeName) instead."))
        }
        return bool
    }

    /// A JSON value as its own `init(from:)` reads it from JSONDecoder: whole numbers that
    /// fit as integers, non-finite ones (written as null) as null.
    static func normalized(_ value: JSONValue) -> JSONValue {
        switch value {
        case .double(let number):
            if !number.isFinite { return .null }
            if let whole: Int64 = integer(fromText: number.description) { return .integer(whole) }
            return value
        case .array(let elements): return .array(elements.map(normalized))
        case .object(let members): return .object(members.mapValues(normalized))
        default: return value
        }
    }

    /// The integer that the number `text` (as `Double.description` writes it) names, if it
    /// is whole and fits `T`: JSONDecoder reads integers from the digits, so
    /// `9.223372036854776e+18` is 9223372036854776000, not the double's 2^63.
    static func integer<T: FixedWidthInteger>(fromText text: String) -> T? {
        var text = Substring(text)
        let negative = text.first == "-"
        if negative { text = text.dropFirst() }
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            guard let value = Int(text[text.index(after: e)...].drop { $0 == "+" }) else { return nil }
            exponent = value
            text = text[..<e]
        }
        var digits = String(text)
        if let dot = digits.firstIndex(of: ".") {
            let fraction = digits[digits.index(after: dot)...]
            exponent -= fraction.count
            digits = String(digits[..<dot]) + fraction
        }
        while exponent < 0 {
            guard digits.last == "0" else { return nil }
            digits.removeLast()
            exponent += 1
        }
        guard exponent <= 40 else { return nil }
        digits += String(repeating: "0", count: exponent)
        return T((negative ? "-" : "") + digits)
    }

    func double(_ value: JSONValue, path: [any CodingKey], key: (any CodingKey)?) throws -> Double {
        switch value {
        case .integer(let integer): return Double(integer)
        case .double(let double) where double.isFinite: return double
        default: throw mismatch(Double.self, value, path: path, key: key)
        }
    }

    func float(_ value: JSONValue, path: [any CodingKey], key: (any CodingKey)?) throws -> Float {
        switch value {
        case .integer(let integer):
            return Float(integer)
        case .double(let double) where double.isFinite:
            // Read from the number's text, as JSONDecoder reads it, and only within range.
            guard let float = Float(double.description), float.isFinite else {
                throw DecodingError.dataCorrupted(.init(
                    codingPath: Self.extend(path, key), debugDescription: "The number \(double) does not fit in Float."))
            }
            return float
        default:
            throw mismatch(Float.self, value, path: path, key: key)
        }
    }

    func integer<T: FixedWidthInteger>(_ value: JSONValue, as type: T.Type, path: [any CodingKey], key: (any CodingKey)?) throws -> T {
        switch value {
        case .integer(let integer):
            if let exact = T(exactly: integer) { return exact }
            throw DecodingError.dataCorrupted(.init(
                codingPath: Self.extend(path, key), debugDescription: "The number \(integer) does not fit in \(T.self)."))
        case .double(let double) where double.isFinite:
            if let exact: T = Self.integer(fromText: double.description) { return exact }
            throw DecodingError.dataCorrupted(.init(
                codingPath: Self.extend(path, key), debugDescription: "The number \(double) does not fit in \(T.self)."))
        default:
            throw mismatch(T.self, value, path: path, key: key)
        }
    }

    func data(_ value: JSONValue, path: [any CodingKey], key: (any CodingKey)?) throws -> Data {
        let at = Self.extend(path, key)
        if coding.readsAttachments, case .object(let members) = value,
            let reference = members[JSONBytes.AttachmentKey.attachment.stringValue],
            let index = try? integer(reference, as: Int.self, path: at, key: JSONBytes.AttachmentKey.attachment)
        {
            guard coding.attachments.indices.contains(index) else {
                throw DecodingError.dataCorrupted(.init(
                    codingPath: at, debugDescription: "attachment \(index) was not sent (the message has \(coding.attachments.count))"))
            }
            return coding.attachments[index]
        }
        let text = try string(value, path: path, key: key)
        guard let data = Data(base64Encoded: text) else {
            let description = coding.readsAttachments ? "expected base64 data or an attachment reference" : "Encountered Data is not valid Base64."
            throw DecodingError.dataCorrupted(.init(codingPath: at, debugDescription: description))
        }
        return data
    }

    func url(_ value: JSONValue, path: [any CodingKey], key: (any CodingKey)?) throws -> URL {
        guard let url = URL(string: try string(value, path: path, key: key)) else {
            throw DecodingError.dataCorrupted(.init(codingPath: Self.extend(path, key), debugDescription: "Invalid URL string."))
        }
        return url
    }

    func decimal(_ value: JSONValue, path: [any CodingKey], key: (any CodingKey)?) throws -> Decimal {
        switch value {
        case .integer(let integer):
            return Decimal(integer)
        case .double(let double) where double.isFinite:
            guard let decimal = Decimal(string: double.description, locale: nil) else {
                throw DecodingError.dataCorrupted(.init(codingPath: Self.extend(path, key), debugDescription: "The number \(double) is not a Decimal."))
            }
            return decimal
        default:
            throw mismatch(Decimal.self, value, path: path, key: key)
        }
    }

    // MARK: Decoder

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else {
            if Self.isNull(value) {
                throw DecodingError.valueNotFound([String: Any].self, .init(
                    codingPath: codingPath, debugDescription: "Cannot get keyed decoding container -- found null value instead"))
            }
            throw DecodingError.typeMismatch([String: Any].self, .init(
                codingPath: codingPath, debugDescription: "Expected to decode Dictionary<String, Any> but found \(value.typeName) instead."))
        }
        return KeyedDecodingContainer(TreeKeyedDecoder(decoder: self, members: members, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let elements) = value else {
            if Self.isNull(value) {
                throw DecodingError.valueNotFound([Any].self, .init(
                    codingPath: codingPath, debugDescription: "Cannot get unkeyed decoding container -- found null value instead"))
            }
            throw DecodingError.typeMismatch([Any].self, .init(
                codingPath: codingPath, debugDescription: "Expected to decode Array<Any> but found \(value.typeName) instead."))
        }
        return TreeUnkeyedDecoder(decoder: self, elements: elements, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueDecodingContainer { self }

    // MARK: Single value

    func decodeNil() -> Bool { Self.isNull(value) }
    func decode(_ type: Bool.Type) throws -> Bool { try bool(value, path: codingPath, key: nil) }
    func decode(_ type: String.Type) throws -> String { try string(value, path: codingPath, key: nil) }
    func decode(_ type: Double.Type) throws -> Double { try double(value, path: codingPath, key: nil) }
    func decode(_ type: Float.Type) throws -> Float { try float(value, path: codingPath, key: nil) }
    func decode(_ type: Int.Type) throws -> Int { try integer(value, as: type, path: codingPath, key: nil) }
    func decode(_ type: Int8.Type) throws -> Int8 { try integer(value, as: type, path: codingPath, key: nil) }
    func decode(_ type: Int16.Type) throws -> Int16 { try integer(value, as: type, path: codingPath, key: nil) }
    func decode(_ type: Int32.Type) throws -> Int32 { try integer(value, as: type, path: codingPath, key: nil) }
    func decode(_ type: Int64.Type) throws -> Int64 { try integer(value, as: type, path: codingPath, key: nil) }
    func decode(_ type: UInt.Type) throws -> UInt { try integer(value, as: type, path: codingPath, key: nil) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(value, as: type, path: codingPath, key: nil) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(value, as: type, path: codingPath, key: nil) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(value, as: type, path: codingPath, key: nil) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(value, as: type, path: codingPath, key: nil) }
    @available(macOS 15.0, *) func decode(_ type: Int128.Type) throws -> Int128 { try integer(value, as: type, path: codingPath, key: nil) }
    @available(macOS 15.0, *) func decode(_ type: UInt128.Type) throws -> UInt128 { try integer(value, as: type, path: codingPath, key: nil) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try unbox(value, as: T.self, path: codingPath, key: nil) }
}

struct TreeKeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: TreeDecoder
    let members: [String: JSONValue]
    let codingPath: [any CodingKey]

    var allKeys: [Key] { members.keys.compactMap { Key(stringValue: $0) } }
    func contains(_ key: Key) -> Bool { members[key.stringValue] != nil }

    private func member(_ key: Key) throws -> JSONValue {
        guard let member = members[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(
                codingPath: codingPath, debugDescription: "No value associated with key \(key) (\"\(key.stringValue)\")."))
        }
        return member
    }

    func decodeNil(forKey key: Key) throws -> Bool { TreeDecoder.isNull(try member(key)) }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try decoder.bool(member(key), path: codingPath, key: key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try decoder.string(member(key), path: codingPath, key: key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try decoder.double(member(key), path: codingPath, key: key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try decoder.float(member(key), path: codingPath, key: key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try decoder.integer(member(key), as: type, path: codingPath, key: key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try decoder.integer(member(key), as: type, path: codingPath, key: key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try decoder.integer(member(key), as: type, path: codingPath, key: key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try decoder.integer(member(key), as: type, path: codingPath, key: key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try decoder.integer(member(key), as: type, path: codingPath, key: key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try decoder.integer(member(key), as: type, path: codingPath, key: key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try decoder.integer(member(key), as: type, path: codingPath, key: key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try decoder.integer(member(key), as: type, path: codingPath, key: key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try decoder.integer(member(key), as: type, path: codingPath, key: key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try decoder.integer(member(key), as: type, path: codingPath, key: key) }
    @available(macOS 15.0, *) func decode(_ type: Int128.Type, forKey key: Key) throws -> Int128 { try decoder.integer(member(key), as: type, path: codingPath, key: key) }
    @available(macOS 15.0, *) func decode(_ type: UInt128.Type, forKey key: Key) throws -> UInt128 { try decoder.integer(member(key), as: type, path: codingPath, key: key) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try decoder.unbox(member(key), as: T.self, path: codingPath, key: key) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try TreeDecoder(value: member(key), codingPath: codingPath + [key], coding: decoder.coding).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try TreeDecoder(value: member(key), codingPath: codingPath + [key], coding: decoder.coding).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        TreeDecoder(value: members[TreeKey.super.stringValue] ?? .null, codingPath: codingPath + [TreeKey.super], coding: decoder.coding)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        TreeDecoder(value: members[key.stringValue] ?? .null, codingPath: codingPath + [key], coding: decoder.coding)
    }
}

struct TreeUnkeyedDecoder: UnkeyedDecodingContainer {
    let decoder: TreeDecoder
    let elements: [JSONValue]
    let codingPath: [any CodingKey]
    private(set) var currentIndex = 0

    init(decoder: TreeDecoder, elements: [JSONValue], codingPath: [any CodingKey]) {
        self.decoder = decoder
        self.elements = elements
        self.codingPath = codingPath
    }

    var count: Int? { elements.count }
    var isAtEnd: Bool { currentIndex >= elements.count }
    private var key: TreeKey { TreeKey(intValue: currentIndex) }

    /// The next element, read by `read`; the index moves on only when it succeeds.
    private mutating func next<T>(_ type: T.Type, _ read: (JSONValue, TreeKey) throws -> T) throws -> T {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(T.self, .init(codingPath: codingPath + [key], debugDescription: "Unkeyed container is at end."))
        }
        let value = try read(elements[currentIndex], key)
        currentIndex += 1
        return value
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any?.self, .init(codingPath: codingPath + [key], debugDescription: "Unkeyed container is at end."))
        }
        guard TreeDecoder.isNull(elements[currentIndex]) else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try next(type) { [decoder, codingPath] in try decoder.bool($0, path: codingPath, key: $1) } }
    mutating func decode(_ type: String.Type) throws -> String { try next(type) { [decoder, codingPath] in try decoder.string($0, path: codingPath, key: $1) } }
    mutating func decode(_ type: Double.Type) throws -> Double { try next(type) { [decoder, codingPath] in try decoder.double($0, path: codingPath, key: $1) } }
    mutating func decode(_ type: Float.Type) throws -> Float { try next(type) { [decoder, codingPath] in try decoder.float($0, path: codingPath, key: $1) } }
    mutating func decode(_ type: Int.Type) throws -> Int { try integer(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try integer(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try integer(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try integer(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try integer(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try integer(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try integer(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try integer(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try integer(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try integer(type) }
    @available(macOS 15.0, *) mutating func decode(_ type: Int128.Type) throws -> Int128 { try integer(type) }
    @available(macOS 15.0, *) mutating func decode(_ type: UInt128.Type) throws -> UInt128 { try integer(type) }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try next(type) { [decoder, codingPath] in try decoder.unbox($0, as: T.self, path: codingPath, key: $1) }
    }

    private mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        try next(type) { [decoder, codingPath] in try decoder.integer($0, as: T.self, path: codingPath, key: $1) }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next(KeyedDecodingContainer<NestedKey>.self) { [decoder, codingPath] value, key in
            try TreeDecoder(value: value, codingPath: codingPath + [key], coding: decoder.coding).container(keyedBy: type)
        }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try next((any UnkeyedDecodingContainer).self) { [decoder, codingPath] value, key in
            try TreeDecoder(value: value, codingPath: codingPath + [key], coding: decoder.coding).unkeyedContainer()
        }
    }

    mutating func superDecoder() throws -> any Decoder {
        try next((any Decoder).self) { [decoder, codingPath] value, key in
            TreeDecoder(value: value, codingPath: codingPath + [key], coding: decoder.coding)
        }
    }
}
