import Foundation
import Testing
import TestSupport
import Yonder
@testable import YonderCluster
import YonderLocalServers

/// `.dockerignore` as Docker reads it, for the build context Yonder packs.
struct DockerIgnoreTests {
    @Test func patternsFoldersNegationAndDoubleStars() {
        let ignore = DockerIgnore("""
            # comment
            *.log
            build/
            **/cache
            secret.txt
            !keep.log
            /docs/*.md
            """)
        #expect(ignore.excludes("a.log") && !ignore.excludes("keep.log"))
        #expect(!ignore.excludes("sub/a.log"), "*.log names the context's root only, as in Docker")
        #expect(ignore.excludes("build") && ignore.excludes("build/out/x.o"))
        #expect(ignore.excludes("cache/x") && ignore.excludes("a/b/cache/y") && ignore.excludes("cache"))
        #expect(ignore.excludes("secret.txt") && !ignore.excludes("not-secret.txt"))
        #expect(ignore.excludes("docs/readme.md") && !ignore.excludes("docs/image.png") && !ignore.excludes("main.swift"))
    }
}

/// `image_id: {build: …}` on a `local` cluster: built on the node from the context, reused
/// while the context is unchanged, rebuilt (and the container replaced) when a file changes.
@Suite(.serialized, .enabled(if: ClusterTestEnvironment.shouldRun))
struct ImageBuildTests {
    let home: URL
    init() throws { home = try TestYonderHome.make() }

    @Test func anImageBuiltFromADockerfileIsReusedUntilItsContextChanges() async throws {
        let name = "b\(UInt16.random(in: 0...UInt16.max))"
        let context = home.appendingPathComponent("app")
        try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
        try "FROM \(ClusterTestEnvironment.image)\nCOPY . /app/\n".write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
        try "one\n".write(to: context.appendingPathComponent("message.txt"), atomically: true, encoding: .utf8)
        try "hunter2\n".write(to: context.appendingPathComponent("secret.txt"), atomically: true, encoding: .utf8)
        try "secret.txt\n".write(to: context.appendingPathComponent(".dockerignore"), atomically: true, encoding: .utf8)
        let specPath = home.appendingPathComponent("\(name).yaml").path
        try """
            name: \(name)
            image_id: {build: app}
            agent: \(ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"] ?? "")
            """.write(toFile: specPath, atomically: true, encoding: .utf8)
        let spec = try ClusterSpec.load(from: specPath)
        #expect(spec.imageBuild?.context == context.path, "the context is relative to the spec's folder")
        var tags: [String] = []
        defer {
            _ = try? ChildProcess.run("/usr/bin/env", ["docker", "rm", "-f", "yonder-\(name)-0"])
            for tag in tags { _ = try? ChildProcess.run("/usr/bin/env", ["docker", "rmi", "-f", tag]) }
        }

        func up() async throws -> (Cluster, [String]) {
            let steps = Locked<[String]>([])
            let cluster = try await Cluster.up(spec) { event in steps.withLock { $0.append("\(event.step): \(event.detail)") } }
            return (cluster, steps.withLock { $0 })
        }
        func read(_ cluster: Cluster, _ path: String) async throws -> String {
            try await cluster.connection().exec(["cat", path]).collect().outputText
        }

        let (first, firstSteps) = try await up()
        #expect(firstSteps.contains { $0.hasPrefix("build: built yonder-build/\(name):") }, "\(firstSteps)")
        #expect(try await read(first, "/app/message.txt") == "one\n")
        #expect(try await first.connection().exec(["test", "-e", "/app/secret.txt"]).collect().status.exitCode == 1, ".dockerignore keeps secret.txt out")
        tags.append(try #require(firstSteps.first { $0.hasPrefix("build: built ") }.map { String($0.dropFirst("build: built ".count)) }))
        await first.close()

        // Unchanged: nothing is built, the container is reused.
        let (second, secondSteps) = try await up()
        #expect(!secondSteps.contains { $0.hasPrefix("build: built") || $0.hasPrefix("build: uploading") }, "\(secondSteps)")
        #expect(secondSteps.contains { $0 == "container: reusing yonder-\(name)-0" })
        await second.close()
        // The container gone but the image there: made again without a build.
        _ = try ChildProcess.run("/usr/bin/env", ["docker", "rm", "-f", "yonder-\(name)-0"])
        let (again, againSteps) = try await up()
        #expect(againSteps.contains { $0.contains("is there already (the context is unchanged)") }, "\(againSteps)")
        await again.close()

        // A file changed: a new image, and the container made again from it.
        try "two\n".write(to: context.appendingPathComponent("message.txt"), atomically: true, encoding: .utf8)
        let (third, thirdSteps) = try await up()
        let newTag = try #require(thirdSteps.first { $0.hasPrefix("build: built ") }.map { String($0.dropFirst("build: built ".count)) })
        tags.append(newTag)
        #expect(newTag != tags[0])
        #expect(thirdSteps.contains { $0.contains("runs \(tags[0]), not \(newTag); replacing it") }, "\(thirdSteps)")
        #expect(try await read(third, "/app/message.txt") == "two\n")
        let report = try await Cluster.report(name)
        #expect(report.image == "built from \(context.path)")
        try await third.down()
    }

    /// A cluster of a fresh name whose image is built from a context in `folder` with a
    /// Dockerfile of one step, `step(name)`, on the base image.
    private func buildSpec(_ folder: String, step: (String) -> String) throws -> (String, ClusterSpec) {
        let name = "b\(UInt16.random(in: 0...UInt16.max))"
        let context = home.appendingPathComponent(folder)
        try FileManager.default.createDirectory(at: context, withIntermediateDirectories: true)
        try "FROM \(ClusterTestEnvironment.image)\n\(step(name))\n".write(to: context.appendingPathComponent("Dockerfile"), atomically: true, encoding: .utf8)
        var spec = ClusterSpec(name: name, agent: ProcessInfo.processInfo.environment["YONDER_STATIC_AGENT"])
        spec.imageBuild = .init(context: context.path)
        return (name, spec)
    }

    /// Cancelling `up` while the image builds (Ctrl-C in the CLI) stops the build on the node:
    /// no container of the running step is left, no `docker build` goes on, no image is tagged.
    @Test func cancellingUpDuringABuildStopsTheBuildOnTheNode() async throws {
        let (name, spec) = try buildSpec("slow") { "RUN sleep 300 && echo built-late-\($0)" }
        let marker = "built-late-\(name)"
        func docker(_ arguments: String...) throws -> String {
            try ChildProcess.run("/usr/bin/env", ["docker"] + arguments).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        func stepContainers() throws -> [String] {
            try docker("ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Command}}").split(separator: "\n")
                .filter { $0.contains(marker) }.map { String($0.split(separator: " ")[0]) }
        }
        defer {
            for id in (try? stepContainers()) ?? [] { _ = try? docker("rm", "-f", id) }
            for image in ((try? docker("image", "ls", "-q", "yonder-build/\(name)")) ?? "").split(separator: "\n") {
                _ = try? docker("rmi", "-f", String(image))
            }
        }

        let up = CancellableUp { try await Cluster.up(spec) }
        // Cancelled once the step's container runs.
        guard try await up.wait(until: "the build's step started", every: .milliseconds(200), { try !stepContainers().isEmpty }) else { return }
        up.task.cancel()
        let outcome = await up.task.result
        #expect(throws: (any Error).self) { try outcome.get() }

        // The build stops within seconds, not when its sleep would have ended.
        let cancelled = ContinuousClock.now
        while try !stepContainers().isEmpty || !docker("image", "ls", "-q", "yonder-build/\(name)").isEmpty {
            guard ContinuousClock.now - cancelled < .seconds(30) else { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        #expect(try stepContainers().isEmpty, "the step's container is still there")
        let builds = try ChildProcess.run("/usr/bin/env", ["ps", "-eo", "args"]).split(separator: "\n").filter { $0.contains("docker build") && $0.contains("yonder-build/\(name)") }
        #expect(builds.isEmpty, "\(builds)")
        #expect(try docker("image", "ls", "-q", "yonder-build/\(name)").isEmpty)
        let left = try docker("ps", "-a", "--filter", "label=yonder.cluster=\(name)", "--format", "{{.Names}}")
        #expect(left.isEmpty)
    }

    /// Cancelling `up` while it uploads the build context leaves no part of it in the node's
    /// home (`~/.yonder/builds`).
    @Test func cancellingUpDuringTheUploadLeavesNoContextOnTheNode() async throws {
        let (_, spec) = try buildSpec("large") { _ in "COPY . /app/" }
        defer { try? FileManager.default.removeItem(at: home.appendingPathComponent("large")) }
        // Incompressible bytes, enough for the upload to take a moment.
        let source = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
        let large = FileManager.default.createFile(atPath: home.appendingPathComponent("large/blob").path, contents: nil)
        #expect(large)
        let blob = try FileHandle(forWritingTo: home.appendingPathComponent("large/blob"))
        for _ in 0..<512 { try blob.write(contentsOf: source.readData(ofLength: 1 << 20)) }
        try blob.close()
        try source.close()
        let builds = URL(fileURLWithPath: String(cString: getpwuid(getuid())!.pointee.pw_dir)).appendingPathComponent(".yonder/builds")
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: builds.path)) ?? [])

        let steps = Locked<[String]>([])
        let up = Task { try await Cluster.up(spec) { event in steps.withLock { $0.append("\(event.step): \(event.detail)") } } }
        let started = ContinuousClock.now
        while !steps.withLock({ $0.contains { $0.hasPrefix("build: uploading the context") } }) {
            guard ContinuousClock.now - started < .seconds(120) else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        up.cancel()
        let outcome = await up.result
        #expect(throws: (any Error).self) { try outcome.get() }
        let seen = steps.withLock { $0 }
        #expect(seen.contains { $0.hasPrefix("build: uploading the context") }, "\(seen)")
        #expect(!seen.contains { $0.hasPrefix("build: building") }, "the upload ended before the cancellation: \(seen)")
        func left() -> Set<String> { Set((try? FileManager.default.contentsOfDirectory(atPath: builds.path)) ?? []).subtracting(before) }
        let cancelled = ContinuousClock.now
        while !left().isEmpty, ContinuousClock.now - cancelled < .seconds(30) {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(left().isEmpty, "left in \(builds.path): \(left())")
    }

    /// What an `up` whose connection was lost left in `~/.yonder/builds` (an upload's
    /// temporary file, a context whose build never started) goes at the next build once it
    /// is an hour old; newer leftovers, which may be another `up`'s, and other files stay.
    @Test func aBuildRemovesWhatLostUploadsLeftBehind() async throws {
        let builds = URL(fileURLWithPath: String(cString: getpwuid(getuid())!.pointee.pw_dir)).appendingPathComponent(".yonder/builds")
        try FileManager.default.createDirectory(at: builds, withIntermediateDirectories: true)
        let mark = UInt16.random(in: 0...UInt16.max)
        let stale = [".old\(mark)-0.tar.yonder-17.tmp", "old\(mark)-0.tar"]
        let recent = [".new\(mark)-0.tar.yonder-18.tmp", "new\(mark)-0.tar"]
        let other = "notes\(mark).txt"
        let twoHoursAgo = Date().addingTimeInterval(-7200)
        for name in stale + recent + [other] {
            let path = builds.appendingPathComponent(name).path
            #expect(FileManager.default.createFile(atPath: path, contents: Data("left".utf8)))
            if !recent.contains(name) { try FileManager.default.setAttributes([.modificationDate: twoHoursAgo], ofItemAtPath: path) }
        }
        defer { for name in stale + recent + [other] { try? FileManager.default.removeItem(at: builds.appendingPathComponent(name)) } }

        // A build that uploads its context and then fails at its step.
        let (_, spec) = try buildSpec("after-loss") { "RUN echo building \($0) && false" }
        let error = await #expect(throws: ClusterError.self) { _ = try await Cluster.up(spec) }
        #expect(error?.code == .imageUnavailable, "\(String(describing: error))")
        for name in stale {
            #expect(!FileManager.default.fileExists(atPath: builds.appendingPathComponent(name).path), "\(name) is still there")
        }
        for name in recent + [other] {
            #expect(FileManager.default.fileExists(atPath: builds.appendingPathComponent(name).path), "\(name) was removed")
        }
    }

    @Test func aFailingBuildSaysWhyAndLeavesNothing() async throws {
        let (name, spec) = try buildSpec("broken") { "RUN echo about to fail in \($0) && false" }
        let error = await #expect(throws: ClusterError.self) { _ = try await Cluster.up(spec) }
        #expect(error?.code == .imageUnavailable)
        #expect(error?.message.contains("failed") == true && error?.message.contains("about to fail") == true, "\(String(describing: error))")
        let left = try ChildProcess.run("/usr/bin/env", ["docker", "ps", "-a", "--filter", "label=yonder.cluster=\(name)", "--format", "{{.Names}}"])
        #expect(left.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        // Nor the stopped container of the step that failed.
        let commands = try ChildProcess.run("/usr/bin/env", ["docker", "ps", "-a", "--no-trunc", "--format", "{{.Command}}"])
        #expect(!commands.contains("about to fail in \(name)"), "\(commands)")
    }
}
