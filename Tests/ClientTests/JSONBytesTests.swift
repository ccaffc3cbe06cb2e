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

    @Test func aFrameCarriesItsLength() throws {
        let frame = JSONBytes.frame(["type": "ping"])
        var decoder = FrameDecoder()
        decoder.append(frame)
        let payload = try #require(try decoder.next())
        #expect(try Message.decode(payload: payload) == .ping(.init()))
    }
}
