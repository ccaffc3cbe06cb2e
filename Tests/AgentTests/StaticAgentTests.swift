import Foundation
import Testing
import TestSupport
import YonderProtocol

/// The agent needs nothing from the image it runs in: a Docker image that holds only the
/// static `yonder-agent` binary runs it.
@Suite(.serialized) struct StaticAgentTests {
    /// Runs a command and returns its exit status and output.
    @discardableResult
    static func run(_ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test func theStaticAgentRunsInAnImageThatHoldsNothingElse() throws {
        guard let binary = ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"],
            FileManager.default.isExecutableFile(atPath: binary)
        else {
            let message = "set YONDER_STATIC_AGENT to a static yonder-agent (scripts/test.sh builds one with -static-executable)"
            if runningUnderCI { Issue.record(Comment(rawValue: message)) }
            return
        }
        guard (try? Self.run(["docker", "info"]).status) == 0 else {
            let message = "docker is not reachable: install docker.io and start dockerd (scripts/setup.sh does both)"
            if runningUnderCI { Issue.record(Comment(rawValue: message)) }
            return
        }
        let ldd = try Self.run(["ldd", binary])
        #expect(ldd.output.contains("not a dynamic executable") || ldd.output.contains("statically linked"), "ldd says: \(ldd.output)")

        let context = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-static-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
        let image = "yonder-test/static-agent:\(UInt32.random(in: 0...UInt32.max))"
        let container = "yonder-test-static-\(UInt32.random(in: 0...UInt32.max))"
        defer {
            _ = try? Self.run(["docker", "rm", "-f", container])
            _ = try? Self.run(["docker", "rmi", "-f", image])
            try? FileManager.default.removeItem(at: context)
        }
        try FileManager.default.copyItem(atPath: binary, toPath: context.appendingPathComponent("yonder-agent").path)
        try "FROM scratch\nCOPY yonder-agent /yonder-agent\nENTRYPOINT [\"/yonder-agent\"]\n"
            .write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
        let build = try Self.run(["docker", "build", "-q", "-t", image, context.path])
        try #require(build.status == 0, "docker build failed: \(build.output)")

        let token = UUID().uuidString
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["docker", "run", "--rm", "--name", container, "--network", "host", "-e", "YONDER_TOKEN",
                             image, "serve", "--port", "0", "--token-env", "YONDER_TOKEN", "--build", "static-test"]
        process.environment = ProcessInfo.processInfo.environment.merging(["YONDER_TOKEN": token]) { $1 }
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        defer { process.terminate() }
        var buffer = Data()
        while !buffer.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
        }
        let line = try #require(buffer.split(separator: UInt8(ascii: "\n")).first)
        let listening = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
        let port = try #require(listening["port"] as? Int)
        #expect(listening["build"] as? String == "static-test")

        let client = try RawFrameClient(port: port)
        client.hello(token: token)
        guard case .hello(let hello)? = try client.receive() else {
            Issue.record("no hello from the containerised agent")
            return
        }
        #expect(hello.build == "static-test")
        client.send(.call(Message.Call(id: 1, function: "yonder.info")))
        guard case .result(let info) = try client.reply(to: 1).reply else {
            Issue.record("yonder.info failed")
            return
        }
        #expect(info.value["name"] == "yonder-agent")
        #expect(info.value["functions"].map { "\($0)".contains("yonder.exec") } == true)
    }
}
