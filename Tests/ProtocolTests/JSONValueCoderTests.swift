import Foundation
import Testing
@testable import YonderProtocol

/// The tree coders (`JSONValueEncoder`, `JSONValueDecoder`) held to what they replace:
/// Foundation's `JSONEncoder` whose text `JSONBytes.parse` reads, and `JSONDecoder` reading
/// the text `JSONBytes.write` makes. Value by value, both must give the same tree or the same
/// value, or both fail, decoding with the same kind of error at the same coding path.
@Suite struct JSONValueCoderTests {
    // MARK: What the coders replace

    /// `JSONEncoder` (default strategies; `Data` as attachments when collecting), parsed.
    static func foundationEncode<T: Encodable>(_ value: T, attachments: inout [Data]?) throws -> JSONValue {
        let encoder = JSONEncoder()
        let collected = JSONBytes.AttachmentBox(attachments ?? [])
        if attachments != nil {
            encoder.dataEncodingStrategy = .custom { data, encoder in
                guard !data.isEmpty else {
                    var container = encoder.singleValueContainer()
                    try container.encode("")
                    return
                }
                var container = encoder.container(keyedBy: JSONBytes.AttachmentKey.self)
                try container.encode(collected.append(data), forKey: .attachment)
            }
        }
        let text = try encoder.encode(value)
        if attachments != nil { attachments = collected.items }
        return try JSONBytes.parse([UInt8](text))
    }

    /// `JSONDecoder` on the written text (reading attachment references when there are any).
    static func foundationDecode<T: Decodable>(_ type: T.Type, from value: JSONValue, attachments: [Data]) throws -> T {
        let decoder = JSONDecoder()
        if !attachments.isEmpty {
            decoder.dataDecodingStrategy = .custom { decoder in
                if let container = try? decoder.container(keyedBy: JSONBytes.AttachmentKey.self),
                    let index = try? container.decode(Int.self, forKey: .attachment)
                {
                    guard attachments.indices.contains(index) else {
                        throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "no attachment \(index)"))
                    }
                    return attachments[index]
                }
                let text = try decoder.singleValueContainer().decode(String.self)
                guard let data = Data(base64Encoded: text) else {
                    throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not base64"))
                }
                return data
            }
        }
        return try decoder.decode(T.self, from: Data(JSONBytes.bytes(value)))
    }

    // MARK: Checks

    /// The kind of a decoding error and where it happened, rendered.
    static func outline(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "not a DecodingError: \(error)" }
        func path(_ keys: [any CodingKey]) -> String { keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") }
        switch error {
        case .keyNotFound(let key, let context): return "keyNotFound \(key.stringValue) at \(path(context.codingPath))"
        case .typeMismatch(_, let context): return "typeMismatch at \(path(context.codingPath))"
        case .valueNotFound(_, let context): return "valueNotFound at \(path(context.codingPath))"
        case .dataCorrupted(let context): return "dataCorrupted at \(path(context.codingPath))"
        @unknown default: return "\(error)"
        }
    }

    static func checkEncoding<T: Encodable>(_ value: T, collecting: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) {
        var expectedAttachments: [Data]? = collecting ? [] : nil
        var attachments: [Data]? = collecting ? [] : nil
        let expected = Result { try foundationEncode(value, attachments: &expectedAttachments) }
        let actual = Result { try JSONValueEncoder(attachments: attachments.map { JSONBytes.AttachmentBox($0) }).encode(value) }
        switch (expected, actual) {
        case (.success(let expected), .success(let actual)):
            #expect(actual == expected, "encoding \(value)", sourceLocation: sourceLocation)
        case (.failure, .failure):
            break
        default:
            Issue.record("encoding \(value): JSONEncoder \(expected), tree \(actual)", sourceLocation: sourceLocation)
        }
        // And through the package's entry point, with its attachments.
        if collecting, case .success(let tree) = expected {
            #expect((try? JSONBytes.encode(value, attachments: &attachments)) == tree, sourceLocation: sourceLocation)
            #expect(attachments == expectedAttachments, sourceLocation: sourceLocation)
        }
    }

    static func checkDecoding<T: Decodable & Equatable>(
        _ type: T.Type, from value: JSONValue, attachments: [Data] = [], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let expected = Result { try foundationDecode(T.self, from: value, attachments: attachments) }
        let actual = Result { try JSONValueDecoder(attachments: attachments, readsAttachments: !attachments.isEmpty).decode(T.self, from: value) }
        switch (expected, actual) {
        case (.success(let expected), .success(let actual)):
            #expect(actual == expected, "decoding \(T.self) from \(value)", sourceLocation: sourceLocation)
        case (.failure(let expected), .failure(let actual)):
            // One difference on purpose: JSONDecoder reports a number out of its type's range
            // with an empty coding path; the tree decoder says where it is.
            let anywhere = outline(expected) == "dataCorrupted at " && outline(actual).hasPrefix("dataCorrupted at ")
            #expect(anywhere || outline(actual) == outline(expected), "decoding \(T.self) from \(value): \(actual) against \(expected)", sourceLocation: sourceLocation)
        default:
            Issue.record("decoding \(T.self) from \(value): JSONDecoder \(expected), tree \(actual)", sourceLocation: sourceLocation)
        }
    }

    // MARK: Types

    struct Inner: Codable, Equatable {
        var label: String
        var values: [Double]
        var weight: Float?
    }

    enum Shape: Codable, Equatable {
        case point
        case circle(radius: Double)
        case labelled(String, Int)
    }

    enum Level: String, Codable { case low, high }

    struct Sample: Codable, Equatable {
        var name: String
        var x: Double
        var y: Double
        var count: Int
        var flag: Bool?
        var tags: [String]
        var inner: Inner?
        var byName: [String: Int]
        var byNumber: [Int: String]
        var blob: Data
        var when: Date
        var link: URL?
        var amount: Decimal
        var ratio: Float
        var small: Int8
        var tiny: UInt8
        var big: UInt64
        var signed: Int64
        var shapes: [Shape]
        var level: Level
        var matrix: [[Int?]]
        var any: JSONValue
    }

    /// A type that writes through every kind of container: nested, super, and single values.
    struct Containers: Codable, Equatable {
        var a: Int
        var b: [String]
        var c: Double

        enum Keys: String, CodingKey { case a, nested, list }
        enum Inner: String, CodingKey { case b, c }

        init(a: Int, b: [String], c: Double) {
            self.a = a
            self.b = b
            self.c = c
        }

        func encode(to encoder: any Encoder) throws {
            var top = encoder.container(keyedBy: Keys.self)
            try top.encode(a, forKey: .a)
            var nested = top.nestedContainer(keyedBy: Inner.self, forKey: .nested)
            var list = nested.nestedUnkeyedContainer(forKey: .b)
            for item in b { try list.encode(item) }
            var deeper = list.nestedContainer(keyedBy: Inner.self)
            try deeper.encode(c, forKey: .c)
            try c.encode(to: top.superEncoder())
            try a.encode(to: top.superEncoder(forKey: .list))
        }

        init(from decoder: any Decoder) throws {
            let top = try decoder.container(keyedBy: Keys.self)
            a = try top.decode(Int.self, forKey: .a)
            let nested = try top.nestedContainer(keyedBy: Inner.self, forKey: .nested)
            var list = try nested.nestedUnkeyedContainer(forKey: .b)
            var items: [String] = []
            while list.count.map({ list.currentIndex < $0 - 1 }) ?? false { items.append(try list.decode(String.self)) }
            let deeper = try list.nestedContainer(keyedBy: Inner.self)
            c = try deeper.decode(Double.self, forKey: .c)
            b = items
            #expect(try Double(from: top.superDecoder()) == c)
            #expect(try Int(from: top.superDecoder(forKey: .list)) == a)
        }
    }

    struct Nothing: Codable, Equatable {
        init() {}
        init(from decoder: any Decoder) throws {}
        func encode(to encoder: any Encoder) throws {}
    }

    static func sample(_ random: inout some RandomNumberGenerator) -> Sample {
        let strings = ["", "plain", "quote \" and \\ backslash", "ünïcödé ✓", "line\nbreak\ttab", "\u{1F600}", "\u{0}"]
        let doubles: [Double] = [0, -0.0, 1, -1.5, 0.1, 1e-300, 1e300, .greatestFiniteMagnitude, .leastNonzeroMagnitude, 3.14159, 1e16, 123456789.125]
        func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &random)] }
        return Sample(
            name: pick(strings),
            x: pick(doubles), y: Double.random(in: -1e6...1e6, using: &random),
            count: pick([0, 1, -1, .max, .min, Int.random(in: .min ... .max, using: &random)]),
            flag: pick([nil, true, false]),
            tags: (0..<Int.random(in: 0...3, using: &random)).map { _ in pick(strings) },
            inner: Bool.random(using: &random) ? Inner(label: pick(strings), values: [pick(doubles), pick(doubles)], weight: pick([nil, 0.1, 3.0e38, -2.5])) : nil,
            byName: [pick(strings): Int.random(in: -5...5, using: &random), "k": 1],
            byNumber: [Int.random(in: -99...99, using: &random): pick(strings)],
            blob: Data((0..<Int.random(in: 0...40, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }),
            when: Date(timeIntervalSinceReferenceDate: pick([0, 1.5, -1e9, 7.25e8])),
            link: pick([nil, URL(string: "https://example.com/a b?c=d#e"), URL(string: "file:///tmp/x"), URL(string: "relative/path")]),
            amount: pick([Decimal(0), Decimal(string: "3.14159265358979323846")!, Decimal(string: "-12.5")!, Decimal(Int64.max)]),
            ratio: pick([0.1, 1, -3.4e38, Float.leastNonzeroMagnitude, 16777217]),
            small: Int8.random(in: .min ... .max, using: &random), tiny: UInt8.random(in: 0...255, using: &random),
            big: pick([0, UInt64(Int64.max), UInt64(Int64.max) + 1, .max]),
            signed: pick([Int64.min, Int64.max, 0]),
            shapes: [pick([Shape.point, .circle(radius: pick(doubles)), .labelled(pick(strings), -3)])],
            level: pick([.low, .high]),
            matrix: [[1, nil], [], [Int.random(in: -9...9, using: &random)]],
            any: pick([.null, .integer(5), .double(2.5), .string("s"), .array([.bool(true)]), .object(["k": .null])]))
    }

    // MARK: Tests

    @Test func encodingGivesTheTreeOfJSONEncodersText() {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let sample = Self.sample(&random)
            Self.checkEncoding(sample)
            Self.checkEncoding(sample, collecting: true)
        }
        Self.checkEncoding(Containers(a: 4, b: ["x", "y"], c: 2.5))
        Self.checkEncoding(Nothing())  // both fail at the top level
        Self.checkEncoding([Nothing()])  // and give {} below it
        Self.checkEncoding(["a": Nothing()])
        for value in [Double.nan, .infinity, -.infinity] {
            Self.checkEncoding(value)
            Self.checkEncoding(["x": value])
            Self.checkEncoding([Float(value)])
        }
        Self.checkEncoding(Data())
        Self.checkEncoding([Decimal.nan])  // JSONEncoder writes NaN, which is no JSON
        Self.checkEncoding([Decimal(string: "-0.000000000000000000000000000001")!, Decimal(string: "123456789012345678901234567890")!])
        Self.checkEncoding([Data(), Data([1, 2, 3])], collecting: true)
        Self.checkEncoding(JSONValue.object(["a": .array([.integer(1), .double(1.5), .null])]))
        Self.checkEncoding([Int128.max, Int128.min, 5])
        Self.checkEncoding([UInt128.max, 7])
        Self.checkEncoding(Optional<Int>.none)
        Self.checkEncoding([Float(1.1), 0.3, 1e-45, 123456.79])
    }

    @Test func decodingAcceptsAndRefusesWhatJSONDecoderDoes() throws {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let sample = Self.sample(&random)
            var none: [Data]? = nil
            let tree = try Self.foundationEncode(sample, attachments: &none)
            Self.checkDecoding(Sample.self, from: tree)
            guard case .object(var members) = tree else { continue }
            // One member at a time: gone, null, or of another kind.
            let key = members.keys.randomElement(using: &random)!
            let replacements: [JSONValue?] = [nil, .null, .bool(true), .integer(300), .integer(-1), .double(1.5), .double(1.0), .double(1e39), .string("x"), .string("aGVsbG8="), .array([]), .object([:])]
            members[key] = replacements.randomElement(using: &random)!
            Self.checkDecoding(Sample.self, from: .object(members))
        }
        var none: [Data]? = nil
        let containers = try Self.foundationEncode(Containers(a: 4, b: ["x", "y"], c: 2.5), attachments: &none)
        Self.checkDecoding(Containers.self, from: containers)
    }

    @Test func scalarsAcceptAndRefuseWhatJSONDecoderDoes() {
        let values: [JSONValue] = [
            .null, .bool(true), .integer(0), .integer(1), .integer(-1), .integer(255), .integer(256), .integer(.max), .integer(.min),
            .double(1.0), .double(-0.0), .double(1e2), .double(1.5), .double(1e19), .double(1.8446744073709552e19), .double(1e39),
            .double(3.4028234663852886e38), .double(0.1), .double(1e300), .double(.nan), .double(.infinity),
            .string(""), .string("x"), .string("aGVsbG8="), .string("aGVsbG8"), .string("aGVs bG8="), .string("https://example.com/x"),
            .string("not a url ::"), .string("12"), .array([]), .array([.integer(1), .null]), .object([:]), .object(["a": .integer(1)]),
            .object(["$attachment": .integer(0)]), .object(["$attachment": .integer(3)]), .object(["1": .string("x")]),
        ]
        for value in values {
            Self.checkDecoding(Int.self, from: value)
            Self.checkDecoding(Int8.self, from: value)
            Self.checkDecoding(UInt8.self, from: value)
            Self.checkDecoding(UInt64.self, from: value)
            Self.checkDecoding(Int64.self, from: value)
            Self.checkDecoding(Double.self, from: value)
            Self.checkDecoding(Float.self, from: value)
            Self.checkDecoding(Bool.self, from: value)
            Self.checkDecoding(String.self, from: value)
            Self.checkDecoding(Data.self, from: value)
            Self.checkDecoding(Data.self, from: value, attachments: [Data([9, 9])])
            Self.checkDecoding([Data].self, from: .array([value]), attachments: [Data([9, 9])])
            Self.checkDecoding(URL.self, from: value)
            Self.checkDecoding(Decimal.self, from: value)
            Self.checkDecoding(Date.self, from: value)
            Self.checkDecoding(Int?.self, from: value)
            Self.checkDecoding([Int].self, from: value)
            Self.checkDecoding([Int?].self, from: value)
            Self.checkDecoding([String: Int].self, from: value)
            Self.checkDecoding([Int: String].self, from: value)
            Self.checkDecoding(Level.self, from: value)
            Self.checkDecoding(Nothing.self, from: value)
            Self.checkDecoding(JSONValue.self, from: value)
            Self.checkDecoding(Inner.self, from: .object(["label": .string("l"), "values": .array([value])]))
            Self.checkDecoding(Inner.self, from: .object(["label": .string("l"), "values": .array([]), "weight": value]))
        }
    }

    @Test func decodeFailuresKeepTheirPathsInTheProtocolError() {
        let value: JSONValue = .object(["label": .string("l"), "values": .array([.double(1), .string("two")])])
        #expect(throws: ProtocolError.self) { _ = try value.decode(as: Inner.self, path: ["result"]) }
        do {
            _ = try value.decode(as: Inner.self, path: ["result"])
        } catch {
            #expect(error.code == .decodeFailed)
            #expect(error.path == ["result", "values", "1"], "\(error)")
        }
        do {
            _ = try JSONValue.object([:]).decode(as: Inner.self, path: ["arguments"])
        } catch {
            #expect(error.path == ["arguments", "label"], "\(error)")
            #expect(error.message.contains("needs the field \"label\""), "\(error)")
        }
    }
}
