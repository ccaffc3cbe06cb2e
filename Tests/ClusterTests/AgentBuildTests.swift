import Foundation
import Testing
@testable import YonderCluster

/// The agent's build name: a content hash, remembered by path, size, time and inode.
struct AgentBuildTests {
    @Test func theHashIsRememberedUntilTheFileChanges() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-build-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let agent = folder.appendingPathComponent("agent").path
        let cache = folder.appendingPathComponent("cache/agent-builds.json")
        try Data("first build".utf8).write(to: URL(fileURLWithPath: agent))

        let first = try AgentExecutable.build(of: agent, cacheFile: cache)
        #expect(first == (try AgentExecutable.hash(of: agent)))
        #expect(try String(contentsOf: cache, encoding: .utf8).contains(first))
        // Asked again: the remembered value, even if the cache is the only source.
        let remembered = try JSONDecoder().decode([String: String].self, from: Data(contentsOf: cache))
        #expect(remembered.count == 1)
        try JSONEncoder().encode(remembered.mapValues { _ in "from-cache" }).write(to: cache)
        #expect(try AgentExecutable.build(of: agent, cacheFile: cache) == "from-cache")

        // Same size, new bytes (a new modification time and file): hashed again, one entry kept.
        try Data("other build".utf8).write(to: URL(fileURLWithPath: agent), options: .atomic)
        let second = try AgentExecutable.build(of: agent, cacheFile: cache)
        #expect(second == (try AgentExecutable.hash(of: agent)) && second != first)
        #expect(try JSONDecoder().decode([String: String].self, from: Data(contentsOf: cache)).count == 1)
    }

    @Test func theHashIsSHA256() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-sha-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data("abc".utf8).write(to: file)
        // FIPS 180-2's example: SHA-256("abc") = ba7816bf 8f01cfea 414140de …
        #expect(try AgentExecutable.hash(of: file.path) == "ba7816bf8f01cfea")
    }
}
