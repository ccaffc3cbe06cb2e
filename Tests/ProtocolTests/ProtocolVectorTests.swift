import Foundation
import Testing
import YonderProtocol

@Suite struct VectorFileTests {
    @Test func vectorFilesLoad() throws {
        let vectors = try VectorCatalog.loaded.get()
        #expect(vectors.count >= 40)
        let names = vectors.map(\.name)
        #expect(Set(names).count == names.count, "vector names are unique")
    }

    @Test func everyMessageTypeHasASchemaAndAGoodVector() throws {
        let vectors = try VectorCatalog.loaded.get()
        var covered: Set<String> = []
        for vector in vectors {
            for case .message(let json) in vector.expectations {
                if case .string(let type)? = json["type"] { covered.insert(type) }
            }
        }
        for type in Message.knownTypes.sorted() {
            let schema = VectorCatalog.schemaFolder.appendingPathComponent("\(type).json")
            #expect(FileManager.default.fileExists(atPath: schema.path), "no schema for \(type)")
            #expect(covered.contains(type), "no good vector for \(type)")
        }
    }
}

@Suite struct ProtocolVectorTests {
    /// Every vector, its bytes delivered whole, in 1-byte pieces, and in 3-byte pieces.
    @Test(arguments: VectorCatalog.all)
    func vector(_ vector: ProtocolVector) {
        for pieceSize in [nil, 1, 3] {
            let outcomes = VectorReplay(vector: vector).run(pieceSize: pieceSize)
            let delivery = pieceSize.map { "in \($0)-byte pieces" } ?? "in one piece"
            let context = "\(vector.file): \(vector.name), \(delivery)"
            #expect(
                outcomes.count == vector.expectations.count,
                "\(context): \(outcomes.count) outcomes, expected \(vector.expectations.count): \(outcomes)")
            for (index, (outcome, expectation)) in zip(outcomes, vector.expectations).enumerated() {
                if let problem = Self.compare(outcome, expectation) {
                    Issue.record("\(context), outcome \(index): \(problem)")
                }
            }
        }
    }

    /// Every expected message encodes and decodes back to itself, payload and frame.
    @Test(arguments: VectorCatalog.all)
    func messagesRoundTrip(_ vector: ProtocolVector) throws {
        for case .message(let json) in vector.expectations {
            let message = try expectedMessageOf(json)
            #expect(try Message.decode(payload: message.encodedPayload()).with(attachments: message.attachments) == message, "\(vector.name)")
            // The text written member by member is the message's JSON object, member for member.
            #expect(try JSONBytes.parse(message.encodedPayload()) == message.json, "\(vector.name)")
            var reader = MessageReader(acceptsAttachments: true)
            reader.append(message.encodedFrame())
            let (object, attachments) = try #require(try reader.next(), "\(vector.name)")
            #expect(try Message.decode(object).with(attachments: attachments) == message, "\(vector.name)")
            #expect(reader.frames.bufferedByteCount == 0)
        }
    }

    private static func compare(_ outcome: ReceivedOutcome, _ expectation: ProtocolVector.Expectation) -> String? {
        switch (outcome, expectation) {
        case (.message(let message), .message(let json)):
            return mismatch(message, expected: json)
        case (.error(let error, let fatal, let id), .error(let code, let path, let expectedFatal, let expectedID)):
            var problems: [String] = []
            if error.code.rawValue != code { problems.append("code \(error.code.rawValue), expected \(code)") }
            if error.path != path { problems.append("path \(error.path ?? []), expected \(path ?? [])") }
            if fatal != expectedFatal { problems.append("fatal \(fatal), expected \(expectedFatal)") }
            if id != expectedID { problems.append("id \(id.map(String.init) ?? "none"), expected \(expectedID.map(String.init) ?? "none")") }
            return problems.isEmpty ? nil : problems.joined(separator: "; ") + " (\(error.message))"
        default:
            return "got \(outcome), expected \(expectation)"
        }
    }
}
