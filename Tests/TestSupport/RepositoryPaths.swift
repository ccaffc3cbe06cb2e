public import Foundation
import YonderLocalServers
#if canImport(Glibc)
import Glibc
#endif

/// Paths inside this repository and its build folder, for fixtures that read the spec
/// or spawn the executables the package builds.
public enum RepositoryPaths {
    /// The repository root (the folder that holds Package.swift).
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // TestSupport
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()

    /// `protocol/` at the repository root.
    public static var protocolFolder: URL { root.appendingPathComponent("protocol") }

    /// The folder that holds the products of the build that is running the tests
    /// (the test bundle lives beside the executables there).
    public static var productsFolder: URL {
        if let override = ProcessInfo.processInfo.environment["YONDER_PRODUCTS_DIR"] {
            return URL(fileURLWithPath: override)
        }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        // swift-testing and XCTest run from `<products>/<Package>PackageTests.xctest`.
        while url.pathComponents.count > 1 {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("yonder-agent").path) {
                return url
            }
        }
        return root.appendingPathComponent(".build/debug")
    }

    /// The path of an executable built by this package, such as `yonder-agent`.
    public static func executable(_ name: String) -> URL {
        productsFolder.appendingPathComponent(name)
    }
}

/// A fresh `~/.yonder` for a test suite, so that its clusters and keys are its own.
public enum TestYonderHome {
    /// Makes an empty folder and sets it as `YONDER_HOME` for this process.
    public static func make() throws -> URL {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-home-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        setenv("YONDER_HOME", home.path, 1)
        return home
    }

    /// Runs the `yonder` executable of this build with `home` as its `YONDER_HOME`; its
    /// exit status and its output (standard output and error).
    public static func yonder(_ arguments: [String], home: URL) throws -> (exitCode: Int32, output: String) {
        var environment = ProcessInfo.processInfo.environment
        environment["YONDER_HOME"] = home.path
        return try ChildProcess.runCapturing(RepositoryPaths.executable("yonder").path, arguments, environment: environment)
    }
}
