import Foundation
import Testing
import YonderProtocol

@Suite struct SchemaTests {
    static func schemaFiles() throws -> [URL] {
        let folder = VectorCatalog.schemaFolder
        let enumerator = try #require(FileManager.default.enumerator(atPath: folder.path))
        return enumerator.compactMap { $0 as? String }.filter { $0.hasSuffix(".json") }.sorted()
            .map { folder.appendingPathComponent($0) }
    }

    @Test func schemaFilesAreDraft2020JSON() throws {
        let files = try Self.schemaFiles()
        #expect(files.count >= Message.knownTypes.count + 1)
        for url in files {
            let schema = try VectorCatalog.readJSON(url)
            #expect(schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", "\(url.lastPathComponent)")
            #expect(schema["title"] != nil, "\(url.lastPathComponent) has a title")
        }
    }

    /// A light check of the message schemas against the vectors: the `type` constant, the
    /// required members, no member the schema does not list, and the members' JSON types.
    @Test func goodVectorsFitTheMessageSchemas() throws {
        for vector in try VectorCatalog.loaded.get() {
            for case .message(let json) in vector.expectations {
                guard case .string(let type)? = json["type"], case .object(let members) = json else {
                    Issue.record("\(vector.name): a message without type")
                    continue
                }
                let schema = try VectorCatalog.readJSON(VectorCatalog.schemaFolder.appendingPathComponent("\(type).json"))
                guard case .object(let properties)? = schema["properties"], case .array(let required)? = schema["required"] else {
                    Issue.record("\(type).json lacks properties or required")
                    continue
                }
                #expect(properties["type"]?["const"] == .string(type), "\(type).json: type const")
                for case .string(let key) in required {
                    #expect(members[key] != nil, "\(vector.name): \(type) requires \(key)")
                }
                for (key, value) in members {
                    // Canonical messages hold only members the spec defines: a misspelt one would be ignored.
                    #expect(properties[key] != nil, "\(vector.name): \(type) has no member \(key)")
                    guard let allowed = properties[key]?["type"] else { continue }
                    let names: [String] = switch allowed {
                    case .string(let name): [name]
                    case .array(let list): list.compactMap { if case .string(let s) = $0 { s } else { nil } }
                    default: []
                    }
                    #expect(names.contains { Self.fits(value, $0) }, "\(vector.name): \(type).\(key) is \(value.typeName), schema says \(names)")
                }
            }
        }
    }

    private static func fits(_ value: JSONValue, _ typeName: String) -> Bool {
        switch (value, typeName) {
        case (.null, "null"), (.bool, "boolean"), (.string, "string"), (.array, "array"), (.object, "object"): true
        case (.integer, "integer"), (.integer, "number"), (.double, "number"): true
        case (.double(let d), "integer"): d.rounded() == d
        default: false
        }
    }
}
