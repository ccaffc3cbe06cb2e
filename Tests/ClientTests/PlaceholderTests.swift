import Testing
import Foundation
import TestSupport

@Test func repositoryRootHoldsPackageManifest() {
    #expect(FileManager.default.fileExists(atPath: RepositoryPaths.root.appendingPathComponent("Package.swift").path))
}
