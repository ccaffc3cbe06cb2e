import Foundation
import TestSupport
import Testing
@testable import YonderCluster

/// The spec's agent product: read from YAML, checked, and built by `up` with the real `swift`.
@Suite(.serialized) struct AgentProductTests {
    @Test func yamlNamesAProductOrAPath() throws {
        let product = try ClusterSpec.parse("name: p\nagent: {product: MyAgent, package: /src/app}\n")
        #expect(product.agentProduct == AgentProduct(product: "MyAgent", package: "/src/app"))
        #expect(product.agent == nil)
        let path = try ClusterSpec.parse("name: p\nagent: /opt/my-agent\n")
        #expect(path.agent == "/opt/my-agent" && path.agentProduct == nil)
        let typo = #expect(throws: ClusterError.self) { try ClusterSpec.parse("name: p\nagent: {produkt: MyAgent}\n") }
        #expect(typo?.message.contains("produkt") == true)
        let both = #expect(throws: ClusterError.self) {
            try ClusterSpec(name: "p", agent: "/x", agentProduct: AgentProduct(product: "MyAgent")).validate()
        }
        #expect(both?.message.contains("not both") == true)
    }

    @Test func aFolderWithoutAPackageIsRefusedClearly() async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let error = await #expect(throws: ClusterError.self) {
            _ = try await AgentProduct(product: "MyAgent", package: folder.path).build(environment: ProcessInfo.processInfo.environment) { _ in }
        }
        #expect(error?.message.contains("has no Package.swift") == true, "\(error?.message ?? "")")
    }

    @Test func aProductIsBuiltStaticAndABrokenOneFailsWithItsErrors() async throws {
        let folder = try Self.folder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try """
            // swift-tools-version:6.1
            import PackageDescription
            let package = Package(name: "Tiny", targets: [.executableTarget(name: "TinyAgent", path: "Sources")])
            """.write(to: folder.appendingPathComponent("Package.swift"), atomically: true, encoding: .utf8)
        let sources = folder.appendingPathComponent("Sources")
        try FileManager.default.createDirectory(at: sources, withIntermediateDirectories: true)
        let main = sources.appendingPathComponent("main.swift")
        try "print(\"tiny\")\n".write(to: main, atomically: true, encoding: .utf8)

        let product = AgentProduct(product: "TinyAgent", package: folder.path)
        let events = Locked<[String]>([])
        let built = try await product.build(environment: ProcessInfo.processInfo.environment) { event in
            events.withLock { $0.append(event.detail) }
        }
        #expect(built == folder.appendingPathComponent(".build-yonder-agent/release/TinyAgent").path)
        #expect(try AgentExecutable.isStatic(built), "the agent must be static")
        #expect(events.withLock { $0 }.contains { $0.hasPrefix("building TinyAgent") })

        try "let x: Int = \"not a number\"\n".write(to: main, atomically: true, encoding: .utf8)
        let error = await #expect(throws: ClusterError.self) {
            _ = try await product.build(environment: ProcessInfo.processInfo.environment) { _ in }
        }
        #expect(error?.message.contains("building the agent product TinyAgent") == true)
        #expect(error?.message.contains("main.swift") == true, "the build's own error is shown: \(error?.message ?? "")")
    }

    static func folder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-product-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }
}
