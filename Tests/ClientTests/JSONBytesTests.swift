import Foundation
import Testing
@testable import Yonder
import YonderProtocol

/// The client's own JSON reader and writer agree with Foundation's on every kind of value.
struct JSONBytesTests {
    @Test(arguments: [
        #"{"a":[1,-2,3.5,true,false,null],"b":{"c":"d"}}"#,
        #""quote \" backslash \\ slash \/ tab \t newline \n ctrl \u0001""#,
        #""snowman \u2603 and a pair \ud83d\ude00 and raw ☃😀""#,
        "9223372036854775807", "-9223372036854775808", "18446744073709551616", "1e300", "-0.5", "[]", "{}",
    ])
    func parsesLikeFoundation(_ text: String) throws {
        let ours = try JSONBytes.parse(Array(text.utf8))
        let foundation = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(ours == foundation)
        // What we write, Foundation reads back to the same value.
        let written = JSONBytes.bytes(ours)
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(written)) == ours)
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"\u{01}\"", "01x", "1 2"])
    func rejectsMalformedText(_ text: String) {
        #expect(throws: ProtocolError.self) { try JSONBytes.parse(Array(text.utf8)) }
    }

    @Test func rejectsInvalidUTF8InAString() {
        let error = #expect(throws: ProtocolError.self) { try JSONBytes.parse([0x22, 0xFF, 0x22]) }
        #expect(error?.code == .invalidUTF8)
    }

    /// A string's bytes are taken exactly when they are valid UTF-8, as the standard library's
    /// validating initializer judges them: random runs of ASCII, of UTF-8 beyond it and of
    /// broken sequences, in the plain path and after an escape.
    @Test func stringsAreCheckedLikeTheStandardLibrary() throws {
        var generator = SystemRandomNumberGenerator()
        let pieces: [[UInt8]] = [
            [0x61], [0x7A, 0x30], Array("é".utf8), Array("☃".utf8), Array("😀".utf8),
            [0xFF], [0xC3], [0x80], [0xE2, 0x98], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xF4, 0x90, 0x80, 0x80],
        ]
        for _ in 0..<3_000 {
            let content = (0..<Int.random(in: 0...12, using: &generator)).flatMap { _ in pieces.randomElement(using: &generator)! }
            let expected = String(validating: content, as: UTF8.self)
            for escaped in [false, true] {
                let text = [0x22] + (escaped ? [0x5C, 0x6E] : []) + content + [0x22]
                let result = Result { try JSONBytes.parse(text) }
                switch (expected, result) {
                case (let string?, .success(let value)):
                    #expect(value == .string((escaped ? "\n" : "") + string), "\(content)")
                case (nil, .failure(let error as ProtocolError)):
                    #expect(error.code == .invalidUTF8, "\(content)")
                default:
                    Issue.record("\(content) (escaped: \(escaped)): expected \(String(describing: expected)), got \(result)")
                }
            }
        }
    }

    /// An object's members, however many and however nested, come out as they went in; a name
    /// given twice keeps its last value.
    @Test func objectsKeepTheirMembersAndTheLastOfARepeatedName() throws {
        let text = #"{"a":1,"b":{"c":[{"d":2,"e":{}},{"f":3}],"g":"h"},"a":4,"i":{"j":{"k":{"l":5}}}}"#
        let expected: JSONValue = [
            "a": 4, "b": ["c": [["d": 2, "e": [:]], ["f": 3]], "g": "h"], "i": ["j": ["k": ["l": 5]]],
        ]
        #expect(try JSONBytes.parse(Array(text.utf8)) == expected)
        let wide = "{" + (0..<100).map { "\"m\($0)\":\($0)" }.joined(separator: ",") + "}"
        guard case .object(let members) = try JSONBytes.parse(Array(wide.utf8)) else { throw ProtocolError(.invalidJSON, "not an object") }
        #expect(members.count == 100 && members["m57"] == .integer(57))
    }

    @Test func aFrameCarriesItsLength() throws {
        let frame = JSONBytes.frame { JSONBytes.write(["type": "ping"], into: &$0) }
        var decoder = FrameDecoder()
        decoder.append(frame)
        let payload = try #require(try decoder.next())
        #expect(try Message.decode(payload: payload) == .ping(.init()))
    }

    /// The eight-bytes-at-a-time scan finds the same byte as a plain loop, wherever the quote,
    /// backslash or control character sits in the word, among bytes of every value.
    @Test func theWordScanFindsWhatAByteLoopFinds() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let count = Int.random(in: 0...40, using: &generator)
            let bytes = (0..<count).map { _ in
                // Mostly plain bytes (ASCII and UTF-8 beyond it), now and then a special one.
                Int.random(in: 0..<8, using: &generator) == 0
                    ? [0x00, 0x1F, 0x22, 0x5C, 0x0A].randomElement(using: &generator)!
                    : UInt8.random(in: 0x20...0xFF, using: &generator)
            }
            let start = Int.random(in: 0...count, using: &generator)
            let expected = bytes[start...].firstIndex { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C } ?? count
            let found = bytes.withUnsafeBufferPointer { JSONBytes.firstSpecialByte(in: $0, from: start) }
            #expect(found == expected, "\(bytes) from \(start)")
        }
        // The bytes next to the special ones (0x21, 0x23, 0x5B, 0x5D, 0x20, 0x7F, 0x80, 0xDC)
        // are never taken for them.
        let near: [UInt8] = Array(repeating: [0x21, 0x23, 0x5B, 0x5D, 0x20, 0x7F, 0x80, 0xDC], count: 9).flatMap { $0 }
        #expect(near.withUnsafeBufferPointer { JSONBytes.firstSpecialByte(in: $0, from: 0) } == near.count)
    }

    /// A long string with one character to escape at each place in turn is written and read
    /// back unchanged.
    @Test func longStringsWithAnEscapeAnywhereRoundTrip() throws {
        for special in ["\"", "\\", "\n", "\u{01}"] {
            for position in 0..<24 {
                var text = String(repeating: "é-plain-text", count: 3)
                text.insert(contentsOf: special, at: text.index(text.startIndex, offsetBy: position))
                let written = JSONBytes.bytes(.string(text))
                #expect(try JSONBytes.parse(written) == .string(text))
                #expect(try JSONDecoder().decode(String.self, from: Data(written)) == text)
            }
        }
    }

    /// UTF-8 is checked before JSON (PROTOCOL.md): a payload with a syntax error before its bad
    /// bytes is `invalid_utf8`; one with the syntax error alone is `invalid_json`.
    @Test func badUTF8AfterASyntaxErrorIsStillReportedFirst() {
        let both = Array(#"{"type":,"reason":""#.utf8) + [0xFF, 0x22, 0x7D]
        #expect((#expect(throws: ProtocolError.self) { try Message.decode(payload: both) })?.code == .invalidUTF8)
        let syntaxOnly = Array(#"{"type":,"reason":"x"}"#.utf8)
        #expect((#expect(throws: ProtocolError.self) { try Message.decode(payload: syntaxOnly) })?.code == .invalidJSON)
        let outsideAString: [UInt8] = [0x7B, 0xC3, 0xA9, 0x7D]
        #expect((#expect(throws: ProtocolError.self) { try Message.decode(payload: outsideAString) })?.code == .invalidJSON)
        let badOutsideAString: [UInt8] = [0x7B, 0xFF, 0x7D]
        #expect((#expect(throws: ProtocolError.self) { try Message.decode(payload: badOutsideAString) })?.code == .invalidUTF8)
    }
}
