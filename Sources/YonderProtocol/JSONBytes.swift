#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif

/// Converts between `JSONValue` and UTF-8 JSON text without going through `Codable`.
///
/// Every request and reply crosses this twice, so it is written for speed: one pass over the
/// bytes, no intermediate `Data`, strings without escapes copied in one piece. Errors carry
/// the protocol's framing codes (`invalid_json`, `invalid_utf8`).
package enum JSONBytes {
    /// Nesting deeper than this is refused rather than risking the stack.
    static let maximumDepth = 512

    // MARK: Writing

    /// Appends `value` as JSON text.
    package static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
        case .bool(true): out.append(contentsOf: [0x74, 0x72, 0x75, 0x65])
        case .bool(false): out.append(contentsOf: [0x66, 0x61, 0x6C, 0x73, 0x65])
        case .integer(let i): writeInteger(i, into: &out)
        case .double(let d):
            if d.isFinite {
                out.append(contentsOf: d.description.utf8)
            } else {
                out.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
            }
        case .string(let s): writeString(s, into: &out)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (index, element) in elements.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                write(element, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            writeObject(into: &out) { body in
                for (key, member) in members { body(key, member) }
            }
        }
    }

    /// Appends a JSON object whose members `members` hands to the body it is given, one by one.
    package static func writeObject(into out: inout [UInt8], _ members: ((String, JSONValue) -> Void) -> Void) {
        out.append(UInt8(ascii: "{"))
        var first = true
        members { key, member in
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            writeString(key, into: &out)
            out.append(UInt8(ascii: ":"))
            write(member, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }

    /// A complete frame of the JSON text that `write` appends: the 4-byte length prefix, then
    /// the text.
    package static func frame(reserving capacity: Int = 128, _ write: (inout [UInt8]) -> Void) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(capacity)
        out.append(contentsOf: [0, 0, 0, 0])
        write(&out)
        let length = UInt32(truncatingIfNeeded: out.count - 4)
        out[0] = UInt8(truncatingIfNeeded: length >> 24)
        out[1] = UInt8(truncatingIfNeeded: length >> 16)
        out[2] = UInt8(truncatingIfNeeded: length >> 8)
        out[3] = UInt8(truncatingIfNeeded: length)
        return out
    }

    /// `value` as JSON text.
    package static func bytes(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        write(value, into: &out)
        return out
    }

    private static func writeInteger(_ value: Int64, into out: inout [UInt8]) {
        if value == 0 {
            out.append(UInt8(ascii: "0"))
            return
        }
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // 32 bytes of scratch, no allocation
        var count = 0
        withUnsafeMutableBytes(of: &digits) { scratch in
            while magnitude > 0 {
                scratch[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            }
            for index in stride(from: count - 1, through: 0, by: -1) {
                out.append(scratch[index])
            }
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    private static func writeString(_ string: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var string = string
        string.withUTF8 { utf8 in
            var runStart = 0
            var index = firstSpecialByte(in: utf8, from: 0)
            while index < utf8.count {
                out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                let byte = utf8[index]
                switch byte {
                case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
                case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
                default:
                    out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                    out.append(hexDigits[Int(byte >> 4)])
                    out.append(hexDigits[Int(byte & 0xF)])
                }
                runStart = index + 1
                index = firstSpecialByte(in: utf8, from: runStart)
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<utf8.count]))
        }
        out.append(UInt8(ascii: "\""))
    }

    /// The index of the first byte at or after `start` that a JSON string cannot hold as it
    /// is: a quote, a backslash or a control character; `bytes.count` when there is none.
    ///
    /// Looks at eight bytes at a time: a word holds such a byte exactly when one of the three
    /// classic byte tests (a byte equal to 0x22, equal to 0x5C, below 0x20) sets a high bit.
    /// Bytes from 0x80 on (UTF-8 beyond ASCII) never do.
    package static func firstSpecialByte(in bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        let count = bytes.count
        var index = start
        guard let base = bytes.baseAddress else { return count }
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        while true {
            while index + 8 <= count {
                let word = UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self)
                let quote = word ^ (ones &* 0x22)
                let backslash = word ^ (ones &* 0x5C)
                let special = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | ((word &- ones &* 0x20) & ~word)
                if special & highs != 0 { break }
                index += 8
            }
            // The word that holds one, or the last bytes: one at a time.
            let end = min(index + 8, count)
            while index < end {
                let byte = base[index]
                if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { return index }
                index += 1
            }
            if index == count { return count }
        }
    }

    // MARK: Reading

    /// Parses one JSON value that fills `bytes` (surrounding whitespace allowed).
    package static func parse(_ bytes: [UInt8]) throws(ProtocolError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { parse(buffer: $0) }.get()
    }

    /// Parses one JSON value that fills `buffer` (surrounding whitespace allowed).
    package static func parse(buffer: UnsafeBufferPointer<UInt8>) -> Result<JSONValue, ProtocolError> {
        var parser = Parser(bytes: buffer)
        do throws(ProtocolError) {
            parser.skipWhitespace()
            let value = try parser.value(depth: 0)
            parser.skipWhitespace()
            guard parser.index == buffer.count else { throw parser.syntaxError("unexpected text after the JSON value") }
            return .success(value)
        } catch {
            return .failure(error)
        }
    }

    /// `utf8` as a string, or `invalid_utf8`.
    ///
    /// Not `String(validating:as:)`: that generic initializer looks up type metadata at run
    /// time on every call, a third of the parser's instructions for a small message. Decoding
    /// repairs bad UTF-8, so the string holds exactly the given bytes only when they were valid;
    /// ASCII, which every member name and most values are, needs no comparison.
    static func string(validating utf8: UnsafeBufferPointer<UInt8>) throws(ProtocolError) -> String {
        let string = String(decoding: utf8, as: UTF8.self)
        guard isASCII(utf8) || string.utf8.elementsEqual(utf8) else {
            throw ProtocolError(.invalidUTF8, "the frame's payload is not valid UTF-8")
        }
        return string
    }

    /// Whether every byte is below 0x80; eight at a time.
    static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        var index = 0
        var high: UInt64 = 0
        while index + 8 <= bytes.count {
            high |= UnsafeRawPointer(base + index).loadUnaligned(as: UInt64.self)
            index += 8
        }
        while index < bytes.count {
            high |= UInt64(base[index])
            index += 1
        }
        return high & 0x8080_8080_8080_8080 == 0
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0
        /// The members of the objects being parsed, innermost last.
        var members: [(String, JSONValue)] = []

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        func syntaxError(_ what: String) -> ProtocolError {
            ProtocolError(.invalidJSON, "the frame's payload is not valid JSON: \(what) at byte \(index)")
        }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x0A, 0x0D, 0x09: index += 1
                default: return
                }
            }
        }

        mutating func value(depth: Int) throws(ProtocolError) -> JSONValue {
            guard depth < JSONBytes.maximumDepth else { throw syntaxError("nesting deeper than \(JSONBytes.maximumDepth) levels") }
            guard index < bytes.count else { throw syntaxError("unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw syntaxError("unexpected character")
            }
        }

        mutating func literal(_ word: StaticString) throws(ProtocolError) {
            let count = word.utf8CodeUnitCount
            guard bytes.count - index >= count else { throw syntaxError("unexpected end") }
            for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] {
                throw syntaxError("unexpected character")
            }
            index += count
        }

        mutating func object(depth: Int) throws(ProtocolError) -> JSONValue {
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object([:])
            }
            // The members wait on the parser's stack until the object ends, so that its
            // dictionary is made once at its final size, not grown one member at a time.
            let base = members.count
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw syntaxError("expected a member name") }
                let key = try string()
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw syntaxError("expected ':'") }
                index += 1
                skipWhitespace()
                members.append((key, try value(depth: depth + 1)))
                skipWhitespace()
                guard index < bytes.count else { throw syntaxError("unexpected end") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                } else if bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    var object = [String: JSONValue](minimumCapacity: members.count - base)
                    for (key, member) in members[base...] { object[key] = member }  // a repeated name: the last wins
                    members.removeSubrange(base...)
                    return .object(object)
                } else {
                    throw syntaxError("expected ',' or '}'")
                }
            }
        }

        mutating func array(depth: Int) throws(ProtocolError) -> JSONValue {
            index += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(elements)
            }
            while true {
                skipWhitespace()
                elements.append(try value(depth: depth + 1))
                skipWhitespace()
                guard index < bytes.count else { throw syntaxError("unexpected end") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                } else if bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return .array(elements)
                } else {
                    throw syntaxError("expected ',' or ']'")
                }
            }
        }

        mutating func string() throws(ProtocolError) -> String {
            index += 1
            let start = index
            // Fast path: no escapes, copied in one piece.
            index = JSONBytes.firstSpecialByte(in: bytes, from: index)
            if index < bytes.count, bytes[index] == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                return try JSONBytes.string(validating: slice)
            }
            var utf8 = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
            while index < bytes.count {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    index += 1
                    return try utf8.withUnsafeBufferPointer { (text) throws(ProtocolError) in try JSONBytes.string(validating: text) }
                case UInt8(ascii: "\\"):
                    index += 1
                    guard index < bytes.count else { throw syntaxError("unexpected end") }
                    let escaped = bytes[index]
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escaped)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"): try unicodeEscape(into: &utf8)
                    default: throw syntaxError("invalid escape")
                    }
                default:
                    if byte < 0x20 { throw syntaxError("control character in a string") }
                    // A run of plain bytes up to the next quote, backslash or control character.
                    let end = JSONBytes.firstSpecialByte(in: bytes, from: index)
                    utf8.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[index..<end]))
                    index = end
                }
            }
            throw syntaxError("unterminated string")
        }

        mutating func hex4() throws(ProtocolError) -> UInt32 {
            guard bytes.count - index >= 4 else { throw syntaxError("unexpected end") }
            var result: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw syntaxError("invalid \\u escape")
                }
                result = result << 4 | UInt32(digit)
                index += 1
            }
            return result
        }

        mutating func unicodeEscape(into utf8: inout [UInt8]) throws(ProtocolError) {
            var scalarValue = try hex4()
            if (0xD800...0xDBFF).contains(scalarValue), bytes.count - index >= 6,
                bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
            {
                let saved = index
                index += 2
                let low = try hex4()
                if (0xDC00...0xDFFF).contains(low) {
                    scalarValue = 0x10000 + ((scalarValue - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    index = saved
                }
            }
            let scalar = Unicode.Scalar(scalarValue) ?? "\u{FFFD}"
            utf8.append(contentsOf: UTF8.encode(scalar)!)
        }

        /// Whether `text` is a number by RFC 8259's grammar:
        /// `[-] (0 | [1-9][0-9]*) [. [0-9]+] [(e|E) [+|-] [0-9]+]`.
        static func isNumber(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
            var i = 0
            let n = text.count
            func isDigit(_ at: Int) -> Bool { at < n && text[at] >= UInt8(ascii: "0") && text[at] <= UInt8(ascii: "9") }
            if i < n && text[i] == UInt8(ascii: "-") { i += 1 }
            guard isDigit(i) else { return false }
            if text[i] == UInt8(ascii: "0") {
                i += 1
            } else {
                while isDigit(i) { i += 1 }
            }
            if i < n && text[i] == UInt8(ascii: ".") {
                i += 1
                guard isDigit(i) else { return false }
                while isDigit(i) { i += 1 }
            }
            if i < n && (text[i] == UInt8(ascii: "e") || text[i] == UInt8(ascii: "E")) {
                i += 1
                if i < n && (text[i] == UInt8(ascii: "+") || text[i] == UInt8(ascii: "-")) { i += 1 }
                guard isDigit(i) else { return false }
                while isDigit(i) { i += 1 }
            }
            return i == n
        }

        mutating func number() throws(ProtocolError) -> JSONValue {
            let start = index
            var isInteger = true
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): index += 1
                case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"), UInt8(ascii: "+"), UInt8(ascii: "-"):
                    isInteger = false
                    index += 1
                default:
                    return try finishNumber(start: start, isInteger: isInteger)
                }
            }
            return try finishNumber(start: start, isInteger: isInteger)
        }

        func finishNumber(start: Int, isInteger: Bool) throws(ProtocolError) -> JSONValue {
            let slice = UnsafeBufferPointer(rebasing: bytes[start..<index])
            guard Self.isNumber(slice) else { throw syntaxError("invalid number (RFC 8259: no leading zeros, digits after '.' and after an exponent)") }
            if isInteger {
                var negative = false
                var digits = slice[...]
                if digits.first == UInt8(ascii: "-") {
                    negative = true
                    digits = digits.dropFirst()
                }
                guard !digits.isEmpty else { throw syntaxError("invalid number") }
                var magnitude: UInt64 = 0
                var overflow = false
                for digit in digits {
                    let (times10, o1) = magnitude.multipliedReportingOverflow(by: 10)
                    let (sum, o2) = times10.addingReportingOverflow(UInt64(digit - UInt8(ascii: "0")))
                    if o1 || o2 { overflow = true; break }
                    magnitude = sum
                }
                if !overflow {
                    if negative, magnitude <= UInt64(Int64.max) + 1 {
                        return .integer(magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude))
                    }
                    if !negative, magnitude <= UInt64(Int64.max) {
                        return .integer(Int64(magnitude))
                    }
                }
            }
            guard let double = Double(String(decoding: slice, as: UTF8.self)), double.isFinite else {
                throw syntaxError("invalid number")
            }
            return .double(double)
        }
    }

    // MARK: Codable bridges

    /// Encodes `value` as a `JSONValue` (see `JSONValueEncoder`).
    package static func encode(_ value: some Encodable) throws(ProtocolError) -> JSONValue {
        var none: [Data]? = nil
        return try encode(value, attachments: &none)
    }

    /// Encodes `value` as a `JSONValue`; when `attachments` is not nil, every non-empty
    /// `Data` in it becomes an attachment appended there, written in the JSON as
    /// `{"$attachment": index}` (PROTOCOL.md section 3), instead of a base64 string.
    package static func encode(_ value: some Encodable, attachments: inout [Data]?) throws(ProtocolError) -> JSONValue {
        let collected = attachments.map { AttachmentBox($0) }
        do {
            let encoded = try JSONValueEncoder(attachments: collected).encode(value)
            if let collected { attachments = collected.items }
            return encoded
        } catch {
            throw ProtocolError(.encodeFailed, "could not encode a \(type(of: value)) as JSON: \(error)")
        }
    }

    /// Decodes `value` as `T`; a mismatch is `decode_failed` with the coding path after `path`.
    /// A `Data` in `T` is read from a base64 string or, when there are `attachments`, from
    /// `{"$attachment": index}` (see `JSONValueDecoder`).
    package static func decode<T: Decodable>(
        _ type: T.Type, from value: JSONValue, path: [String], attachments: [Data] = []
    ) throws(ProtocolError) -> T {
        do {
            return try JSONValueDecoder(attachments: attachments, readsAttachments: !attachments.isEmpty).decode(T.self, from: value)
        } catch {
            throw JSONValue.describe(error, decoding: T.self, prefix: path)
        }
    }

    /// The member name of an attachment reference.
    enum AttachmentKey: String, CodingKey {
        case attachment = "$attachment"
    }

    /// Collects attachments during one synchronous encode.
    final class AttachmentBox: @unchecked Sendable {
        // Safe: used only by the one thread running the encode that made it.
        var items: [Data]
        init(_ items: [Data]) { self.items = items }
        func append(_ bytes: Data) -> Int {
            items.append(bytes)
            return items.count - 1
        }
    }

}
