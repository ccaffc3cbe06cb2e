#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import Foundation
import YonderLocalServers
import YonderSSH

/// A user's agent that `Cluster.up` builds for them: an executable product of their package
/// (one that calls `Agent.serve`), built static and stripped in a scratch folder of its own.
///
/// In YAML: `agent: {product: MyAgent}` (the package in the current folder) or
/// `agent: {product: MyAgent, package: path/to/package}`. SwiftPM's incremental build
/// compiles only what changed since the last `up`.
public struct AgentProduct: Sendable, Hashable, Codable {
    /// The executable product's name.
    public var product: String
    /// The folder of the package that has it; nil for the current folder.
    public var package: String?

    /// Names the product `product` of the package in `package` (nil: the current folder).
    public init(product: String, package: String? = nil) {
        self.product = product
        self.package = package
    }

    /// The package's folder, absolute.
    var packageFolder: URL {
        let folder = HostKeyVerifier.expandTilde(package ?? FileManager.default.currentDirectoryPath)
        return URL(fileURLWithPath: folder, isDirectory: true).standardizedFileURL
    }

    /// Where the static build goes, inside the package: `.build-yonder-agent`.
    var scratchFolder: URL { packageFolder.appendingPathComponent(".build-yonder-agent") }

    /// The arguments of `swift` that build it: static and stripped on Linux; on macOS with the
    /// Static Linux SDK (`YONDER_SWIFT_SDK` names another SDK, on either).
    func buildArguments(environment: [String: String]) -> [String] {
        var arguments = [
            "build", "--package-path", packageFolder.path, "-c", "release", "--scratch-path", scratchFolder.path,
            "--product", product,
        ]
        #if os(Linux)
        let sdk = environment["YONDER_SWIFT_SDK"]
        #else
        let sdk = environment["YONDER_SWIFT_SDK"] ?? "x86_64-swift-linux-musl"
        #endif
        if let sdk {
            arguments += ["--swift-sdk", sdk, "-Xlinker", "-s"]
        } else {
            arguments += ["-Xswiftc", "-static-executable", "-Xlinker", "-s"]
        }
        return arguments
    }

    /// Builds the product and returns the executable's path. Reports progress as step
    /// `agent`; fails with the build's last lines.
    package func build(environment: [String: String], progress: @escaping @Sendable (ClusterProgress) -> Void) async throws -> String {
        let manifest = packageFolder.appendingPathComponent("Package.swift").path
        guard FileManager.default.fileExists(atPath: manifest) else {
            throw ClusterError(.agentFailed, "the agent product \(product) cannot be built: \(packageFolder.path) has no Package.swift; run from your package's folder or give agent: {product: \(product), package: PATH}")
        }
        let arguments = buildArguments(environment: environment)
        progress(ClusterProgress(node: nil, step: "agent", detail: "building \(product) (swift \(arguments.joined(separator: " ")))"))
        let started = ContinuousClock.now
        let swift = environment["YONDER_SWIFT"] ?? "swift"
        let (status, output) = try await Self.runOffThread("/usr/bin/env", [swift] + arguments, environment: environment)
        guard status == 0 else {
            let tail = output.split(separator: "\n").suffix(15).joined(separator: "\n")
            throw ClusterError(.agentFailed, "building the agent product \(product) in \(packageFolder.path) failed (exit status \(status)); fix the build and run up again. The build's last lines:\n\(tail)")
        }
        let built = scratchFolder.appendingPathComponent("release").appendingPathComponent(product).path
        guard FileManager.default.isExecutableFile(atPath: built) else {
            throw ClusterError(.agentFailed, "building \(product) succeeded but \(built) is not there; is \(product) an executable product of \(packageFolder.path)?")
        }
        progress(ClusterProgress(node: nil, step: "agent", detail: "built \(product): \(built)", elapsed: ContinuousClock.now - started))
        return built
    }

    /// Runs a program on a thread of its own (a build takes minutes; it must not hold a
    /// thread of the concurrency pool).
    private static func runOffThread(_ path: String, _ arguments: [String], environment: [String: String]) async throws -> (Int32, String) {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                do {
                    continuation.resume(returning: try ChildProcess.runCapturing(path, arguments, environment: environment))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }
}
