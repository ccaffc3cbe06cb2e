import ArgumentParser
import Foundation
import Synchronization
import Yonder
import YonderCluster
import YonderLocalServers
import YonderSSH
#if canImport(Glibc)
import Glibc
#endif

/// `yonder-bench e2e`: `up` cold and warm on a local cluster, and calls through the tunnel
/// to the agent in the container, beside OpenSSH's tunnel echo on the same sshd.
struct E2E: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "e2e",
        abstract: "Cluster up (cold, warm) and call latency through the SSH tunnel, vs OpenSSH's tunnel echo.",
        discussion: """
            Brings up a one-node local cluster (a private sshd on 127.0.0.1 and the local Docker \
            engine) with --image, which must already be pulled, and the static agent named by \
            --agent or YONDER_AGENT. Measures: a cold up (no container, agent already uploaded), \
            a warm up (everything running), the no-op yonder.ping call through the tunnel (also from \
            a task that prefers the connection's executor), and a \
            16-byte echo through `ssh -N -L` on the same sshd (p50, p99, the slowest call and how many \
            took over 10 ms), 64 calls in flight, a Data round trip, putFile and getFile of a \
            --file-mib file (new files, then again over the files just written), writing that file \
            here with no transfer (new, then over itself), and their baselines: the same bytes \
            through our own tunnel with no Yonder on the way (an echo for the Data round trip, a \
            sink and a source for the files, and the same with a file read and written at both \
            ends, as putFile and getFile have, new and then over), and through `ssh -N -L` for \
            scale. Tears the cluster down at the end.

            Example: YONDER_AGENT=.build-static/release/yonder-agent swift run -c release yonder-bench e2e
            """)

    @Option(help: "The image to run (already pulled).")
    var image = "yonder/debian:bookworm"

    @Option(help: "The static agent executable; defaults to YONDER_AGENT.")
    var agent: String?

    @Option(help: "Round trips measured for each latency figure.")
    var iterations = 10_000

    @Option(help: "Round trips run before measuring.")
    var warmup = 1_000

    @Option(help: "yonder.ping calls made with 64 in flight.")
    var calls = 100_000

    @Option(name: .customLong("bytes-mib"), help: "MiB of Data sent to yonder.ping and back as an attachment (at most 64).")
    var bytesMiB = 64

    @Option(name: .customLong("raw-mib"), help: "MiB sent to an echo and back through our tunnel and through OpenSSH's, the bulk baselines.")
    var rawMiB = 256

    @Option(name: .customLong("file-mib"), help: "MiB of a file sent with putFile and read back with getFile through the tunnel (0: skip).")
    var fileMiB = 1024

    @Option(help: "Cold and warm ups measured (the median is reported).")
    var ups = 3

    @Flag(help: "Print the results as JSON.")
    var json = false

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-bench-e2e-\(getpid())")
        setenv("YONDER_HOME", home.path, 1)
        defer { try? FileManager.default.removeItem(at: home) }
        let spec = ClusterSpec(name: "bench-e2e", image: image, agent: agent ?? ProcessInfo.processInfo.environment["YONDER_AGENT"])
        try await takingDownOnFailure(spec.name) { try await measure(spec, home: home) }
    }

    private func measure(_ spec: ClusterSpec, home: URL) async throws {

        // The first up uploads the agent and starts sshd; not measured.
        log("first up (starts sshd, uploads the agent)")
        let first = try await Cluster.up(spec)
        await first.close()
        var cold: [Double] = []
        var warm: [Double] = []
        for round in 0..<ups {
            log("cold up \(round + 1) of \(ups)")
            _ = try ChildProcess.run("/usr/bin/env", ["docker", "rm", "-f", "yonder-\(spec.name)-0"])
            var start = ContinuousClock.now
            let cluster = try await Cluster.up(spec)
            cold.append(seconds(ContinuousClock.now - start))
            await cluster.close()
            log("warm up \(round + 1) of \(ups)")
            start = ContinuousClock.now
            let again = try await Cluster.up(spec)
            warm.append(seconds(ContinuousClock.now - start))
            await again.close()
        }

        let cluster = try await Cluster.up(spec)
        let connection = try await cluster.connection()
        log("yonder.ping through the tunnel")
        let ping = try await Local.pingLatency(connection, iterations: iterations, warmup: warmup)
        let pinned = try await withTaskExecutorPreference(connection.executor) {
            try await Local.pingLatency(connection, iterations: iterations, warmup: warmup)
        }
        log("\(calls) yonder.ping calls, 64 in flight, through the tunnel")
        let throughput = try await Local.throughput(connection, calls: calls, inFlight: 64)
        let taskThroughput = try await Local.throughput(connection, calls: calls, inFlight: 64, function: "yonder.objects")
        log("\(bytesMiB) MiB of Data to yonder.ping and back, as attachments, through the tunnel")
        let bytesSeconds = try await Local.bytesRoundTrip(connection, mebibytes: bytesMiB)
        var files: [FileRound] = []
        var localWrites: FileRound?
        if fileMiB > 0 {
            log("a \(fileMiB) MiB file with putFile, then back with getFile, through the tunnel; then both again over the files they wrote")
            (files, localWrites) = try await Self.fileTransfer(connection, mebibytes: fileMiB, home: home)
        }

        // OpenSSH's tunnel echo on the same sshd.
        let node = cluster.state.nodes[0]
        let echo = try EchoServer()
        defer { echo.stop() }
        // The one-way baselines of putFile and getFile: as many bytes into a sink and out of a
        // source, through ssh -N -L and through our own tunnel, with no Yonder on the way.
        let sink = try EchoServer(mode: .sink)
        defer { sink.stop() }
        let source = try EchoServer(mode: .source(bytes: fileMiB << 20))
        defer { source.stop() }
        // And with a file at both ends, as putFile and getFile have: the client reads a file
        // and the sink writes it; the source reads that file and the client writes a copy.
        let fileAtSink = home.appendingPathComponent("bench-sink-file").path
        let fileSink = try EchoServer(mode: .fileSink(path: fileAtSink))
        defer { fileSink.stop() }
        let fileSource = try EchoServer(mode: .fileSource(path: fileAtSink))
        defer { fileSource.stop() }
        let knownHosts = home.appendingPathComponent("known_hosts")
        try "[127.0.0.1]:\(node.port) \(node.pinnedHostKey ?? "")\n".write(to: knownHosts, atomically: true, encoding: .utf8)
        // Five free ports, each checked (the ones after a free port may be taken, and then
        // ssh, with ExitOnForwardFailure, would not start).
        var ports: [Int] = []
        while ports.count < 5 {
            let port = try LocalSSHServer.freePort()
            if !ports.contains(port) { ports.append(port) }
        }
        let ssh = try ChildProcess.spawn("/usr/bin/ssh", [
            "-N", "-L", "127.0.0.1:\(ports[0]):127.0.0.1:\(echo.port)",
            "-L", "127.0.0.1:\(ports[1]):127.0.0.1:\(sink.port)", "-L", "127.0.0.1:\(ports[2]):127.0.0.1:\(source.port)",
            "-L", "127.0.0.1:\(ports[3]):127.0.0.1:\(fileSink.port)", "-L", "127.0.0.1:\(ports[4]):127.0.0.1:\(fileSource.port)", "-p", String(node.port), "-i", node.identityFile ?? "",
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=\(knownHosts.path)",
            "-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha2-256", "-o", "ExitOnForwardFailure=yes", "\(node.user)@127.0.0.1",
        ])
        defer {
            kill(ssh, SIGTERM)
            ChildProcess.wait(ssh)
        }
        // ssh binds all five before it connects; a probe of the sink or the source would be
        // served as a transfer.
        for _ in 0..<250 where !LocalSSHServer.canConnect(port: ports[0]) { usleep(20_000) }
        log("16-byte echo through ssh -N -L")
        let socket = try BlockingSocket(port: ports[0])
        let openssh = try socket.latency(iterations: iterations, warmup: warmup)
        log("\(rawMiB) MiB through ssh -N -L to the echo and back")
        let rawSeconds = try socket.bulk(mebibytes: rawMiB)
        socket.close()
        // The same through our own tunnel: the raw rate of the tunnel the calls above took,
        // which is the baseline of the Data round trip (what Yonder adds on top of it).
        log("\(rawMiB) MiB through our tunnel to the echo and back")
        let session = try await cluster.session(node: 0)
        let tunnel = try await session.openTunnel(host: "127.0.0.1", port: echo.port)
        let tunnelSeconds = try await Self.deliveredEcho(tunnel, mebibytes: rawMiB)
        await tunnel.close()
        var oneWay: OneWay?
        if fileMiB > 0 {
            log("\(fileMiB) MiB one way into a sink and out of a source, through ssh -N -L and through our tunnel")
            let up = try BlockingSocket(port: ports[1])
            defer { up.close() }
            let down = try BlockingSocket(port: ports[2])
            defer { down.close() }
            oneWay = OneWay(
                opensshUp: try up.upload(mebibytes: fileMiB), opensshDown: try down.download(mebibytes: fileMiB),
                oursUp: try await Self.upload(try await session.openTunnel(host: "127.0.0.1", port: sink.port), mebibytes: fileMiB),
                oursDown: try await Self.download(try await session.openTunnel(host: "127.0.0.1", port: source.port), mebibytes: fileMiB))
            log("a \(fileMiB) MiB file one way into a file and back out of it, through our tunnel")
            let local = home.appendingPathComponent("bench-file").path, copy = home.appendingPathComponent("bench-file-copy").path
            defer {
                for path in [local, copy, fileAtSink] { try? FileManager.default.removeItem(atPath: path) }
            }
            try Self.writeFile(local, mebibytes: fileMiB)
            // Twice, as putFile and getFile: new files, then the same files written over.
            for _ in 0..<2 {
                oneWay?.files.append(FileRound(
                    put: try await Self.upload(try await session.openTunnel(host: "127.0.0.1", port: fileSink.port), mebibytes: fileMiB, from: local),
                    get: try await Self.download(try await session.openTunnel(host: "127.0.0.1", port: fileSource.port), mebibytes: fileMiB, into: copy)))
            }
            // And through ssh -N -L, new files again first. Memory just freed is taken again
            // at the cost of memory in use: the pause lets a machine that hands free memory
            // back to its host do so, as it did before the first rounds above.
            log("the same through ssh -N -L")
            for path in [fileAtSink, copy] { try? FileManager.default.removeItem(atPath: path) }
            try await Task.sleep(for: .seconds(5))
            for _ in 0..<2 {
                let up = try BlockingSocket(port: ports[3])
                let put = try up.upload(mebibytes: fileMiB, from: local)
                up.close()
                let down = try BlockingSocket(port: ports[4])
                let get = try down.download(mebibytes: fileMiB, into: copy)
                down.close()
                oneWay?.opensshFiles.append(FileRound(put: put, get: get))
            }
        }
        try await cluster.down()

        // MB/s of a transfer of the file's size that took these seconds.
        let fileRate = { (seconds: Double) in Double(fileMiB << 20) / seconds / 1e6 }
        let report = E2EReport(
            coldUpSeconds: cold.sorted()[cold.count / 2], warmUpSeconds: warm.sorted()[warm.count / 2],
            coldUps: cold, warmUps: warm,
            pingP50Microseconds: ping.p50, pingP99Microseconds: ping.p99,
            pingMaxMicroseconds: ping.max, pingsOver10ms: ping.over10ms,
            opensshEchoP50Microseconds: openssh.p50, opensshEchoP99Microseconds: openssh.p99,
            ratio: ping.p50 / openssh.p50, p99Ratio: ping.p99 / openssh.p99,
            pinnedP50Microseconds: pinned.p50, pinnedP99Microseconds: pinned.p99,
            pinnedRatio: pinned.p50 / openssh.p50, pinnedP99Ratio: pinned.p99 / openssh.p99,
            callsPerSecond: throughput, taskCallsPerSecond: taskThroughput,
            bytesMegabytesPerSecond: Double(2 * bytesMiB << 20) / bytesSeconds / 1e6,
            rawMegabytesPerSecond: Double(2 * rawMiB << 20) / rawSeconds / 1e6,
            tunnelMegabytesPerSecond: Double(2 * rawMiB << 20) / tunnelSeconds / 1e6,
            putFileMegabytesPerSecond: files.first.map { fileRate($0.put) },
            getFileMegabytesPerSecond: files.first.map { fileRate($0.get) },
            putFileOverMegabytesPerSecond: files.last.map { fileRate($0.put) },
            getFileOverMegabytesPerSecond: files.last.map { fileRate($0.get) },
            localNewFileMegabytesPerSecond: localWrites.map { fileRate($0.put) },
            localFileOverMegabytesPerSecond: localWrites.map { fileRate($0.get) },
            opensshUploadMegabytesPerSecond: oneWay.map { fileRate($0.opensshUp) },
            opensshDownloadMegabytesPerSecond: oneWay.map { fileRate($0.opensshDown) },
            tunnelUploadMegabytesPerSecond: oneWay.map { fileRate($0.oursUp) },
            tunnelDownloadMegabytesPerSecond: oneWay.map { fileRate($0.oursDown) },
            tunnelFileUploadMegabytesPerSecond: oneWay?.files.first.map { fileRate($0.put) },
            tunnelFileDownloadMegabytesPerSecond: oneWay?.files.first.map { fileRate($0.get) },
            tunnelFileUploadOverMegabytesPerSecond: oneWay?.files.last.map { fileRate($0.put) },
            tunnelFileDownloadOverMegabytesPerSecond: oneWay?.files.last.map { fileRate($0.get) },
            opensshFileUploadMegabytesPerSecond: oneWay?.opensshFiles.first.map { fileRate($0.put) },
            opensshFileDownloadMegabytesPerSecond: oneWay?.opensshFiles.first.map { fileRate($0.get) },
            opensshFileUploadOverMegabytesPerSecond: oneWay?.opensshFiles.last.map { fileRate($0.put) },
            opensshFileDownloadOverMegabytesPerSecond: oneWay?.opensshFiles.last.map { fileRate($0.get) },
            fileMiB: fileMiB, iterations: iterations, agent: "\(connection.agent)")
        try report.emit(json: json)
    }

    /// Seconds of each one-way baseline.
    struct OneWay {
        var opensshUp: Double
        var opensshDown: Double
        var oursUp: Double
        var oursDown: Double
        /// Our tunnel with a file at both ends: new files, then the same written over.
        var files: [FileRound] = []
        /// The same through ssh -N -L.
        var opensshFiles: [FileRound] = []
    }

    /// Seconds of one file sent up and read back down (or, for the local writes, written
    /// new and written over).
    struct FileRound {
        var put: Double
        var get: Double
    }

    // The baselines use the tunnel as a connection does: `Data` written from where it is held,
    // and what comes back taken on the session's thread as it arrives (`SSHTunnel.deliver`).

    /// Seconds to send `mebibytes` through `tunnel` to the echo and get them all back.
    static func deliveredEcho(_ tunnel: SSHTunnel, mebibytes: Int) async throws -> Double {
        let start = ContinuousClock.now
        let writer = Task { try await send(mebibytes, through: tunnel, thenClose: false) }
        let received = try await delivered(from: tunnel, until: mebibytes << 20)
        try await writer.value
        let seconds = seconds(ContinuousClock.now - start)
        await tunnel.close()
        guard received.count == mebibytes << 20 else {
            throw ValidationError("the echo through our tunnel sent back \(received.count) bytes, not \(mebibytes) MiB")
        }
        return seconds
    }

    /// Seconds to send `mebibytes` through `tunnel` to a sink until it says all arrived: blocks
    /// of memory, or with `path` that file, read 1 MiB at a time as `putFile` reads.
    static func upload(_ tunnel: SSHTunnel, mebibytes: Int, from path: String? = nil) async throws -> Double {
        let handle = try path.map { path in
            guard let handle = FileHandle(forReadingAtPath: path) else { throw ValidationError("cannot read \(path)") }
            return handle
        }
        defer { try? handle?.close() }
        let start = ContinuousClock.now
        let writer = Task {
            if let handle {
                while let block = try handle.read(upToCount: 1 << 20), !block.isEmpty { try await tunnel.write(block) }
                await tunnel.closeWrite()
            } else {
                try await send(mebibytes, through: tunnel, thenClose: true)
            }
        }
        let answer = try await delivered(from: tunnel, until: 8).first
        try await writer.value
        let seconds = seconds(ContinuousClock.now - start)
        await tunnel.close()
        guard answer.count == 8, answer.reduce(0, { $0 << 8 | Int($1) }) == mebibytes << 20 else {
            throw ValidationError("the sink did not get all \(mebibytes) MiB through our tunnel")
        }
        return seconds
    }

    /// Seconds to read `mebibytes` from a source through `tunnel` to its end, and write them
    /// to the file `path` on a thread of its own (as `getFile` writes off the session's thread).
    static func download(_ tunnel: SSHTunnel, mebibytes: Int, into path: String) async throws -> Double {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw ValidationError("cannot write \(path)")
        }
        defer { try? handle.close() }
        let start = ContinuousClock.now
        let writer = FileWriter(handle)
        let received = try await delivered(from: tunnel, until: nil, handing: writer.add)
        writer.finish()
        let seconds = seconds(ContinuousClock.now - start)
        await tunnel.close()
        let written = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
        guard received.count == mebibytes << 20, written == received.count else {
            throw ValidationError("read \(received.count) bytes from the file source through our tunnel and wrote \(written), not \(mebibytes) MiB")
        }
        return seconds
    }

    /// Writes the chunks handed to it to a file, in order, on a thread of its own.
    final class FileWriter: @unchecked Sendable {
        // Safe: `chunks` and `ended` are behind `condition`.
        private let condition = NSCondition()
        private var chunks: [[UInt8]] = []
        private var ended = false
        private let done = DispatchSemaphore(value: 0)

        init(_ handle: FileHandle) {
            Thread { [self] in
                while true {
                    condition.lock()
                    while chunks.isEmpty && !ended { condition.wait() }
                    let batch = chunks
                    chunks.removeAll(keepingCapacity: true)
                    let last = ended
                    condition.unlock()
                    for chunk in batch { try? handle.write(contentsOf: chunk) }
                    if last && batch.isEmpty { break }
                }
                done.signal()
            }.start()
        }

        func add(_ chunk: [UInt8]) {
            condition.lock()
            chunks.append(chunk)
            condition.signal()
            condition.unlock()
        }

        /// Waits until every chunk added is written.
        func finish() {
            condition.lock()
            ended = true
            condition.signal()
            condition.unlock()
            done.wait()
        }
    }

    /// Seconds to read `mebibytes` from a source through `tunnel` to its end.
    static func download(_ tunnel: SSHTunnel, mebibytes: Int) async throws -> Double {
        let start = ContinuousClock.now
        let received = try await delivered(from: tunnel, until: nil)
        let seconds = seconds(ContinuousClock.now - start)
        await tunnel.close()
        guard received.count == mebibytes << 20 else {
            throw ValidationError("read \(received.count) bytes from the source through our tunnel, not \(mebibytes) MiB")
        }
        return seconds
    }

    /// Writes `mebibytes` of 1 MiB `Data` blocks into `tunnel`, then sends end-of-file if asked.
    private static func send(_ mebibytes: Int, through tunnel: SSHTunnel, thenClose: Bool) async throws {
        let block = Data(repeating: 0x5a, count: 1 << 20)
        for _ in 0..<mebibytes { try await tunnel.write(block) }
        if thenClose { await tunnel.closeWrite() }
    }

    /// Counts the bytes the tunnel delivers until `total` have come (or its end, with nil),
    /// and keeps the first 8 (a sink's answer).
    private static func delivered(
        from tunnel: SSHTunnel, until total: Int?, handing handler: (@Sendable ([UInt8]) -> Void)? = nil
    ) async throws -> (count: Int, first: [UInt8]) {
        try await withCheckedThrowingContinuation { continuation in
            let state = Mutex((count: 0, first: [UInt8](), resumed: false))
            tunnel.deliver { result in
                let outcome: Result<(count: Int, first: [UInt8]), any Error>? = state.withLock { state in
                    guard !state.resumed else { return nil }
                    switch result {
                    case .success(let bytes?):
                        handler?(bytes)
                        if state.first.count < 8 { state.first += bytes.prefix(8 - state.first.count) }
                        state.count += bytes.count
                        // Without a total, only the end ends it.
                        guard let total, state.count >= total else { return nil }
                    case .success(nil): break
                    case .failure(let error):
                        state.resumed = true
                        return .failure(error)
                    }
                    state.resumed = true
                    return .success((state.count, state.first))
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        }
    }

    /// Writes a file of `mebibytes`, each MiB marked with its index; returns the last MiB.
    @discardableResult
    static func writeFile(_ path: String, mebibytes: Int) throws -> [UInt8] {
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw ValidationError("cannot write \(path)")
        }
        defer { try? handle.close() }
        var piece = [UInt8](repeating: 0, count: 1 << 20)
        for index in 0..<mebibytes {
            for offset in stride(from: 0, to: piece.count, by: 4096) { piece[offset] = UInt8(truncatingIfNeeded: index &+ offset) }
            try handle.write(contentsOf: piece)
        }
        return piece
    }

    /// Seconds to put a file of `mebibytes` into the container and to get it back, each
    /// checked by size and by its last MiB: first as new files, then again at once over the
    /// files the first round wrote. A new file takes pages the kernel has not used for a while,
    /// which a virtual machine whose free memory goes back to its host (free page reporting)
    /// must fault in again, at a cost of its own (BENCHMARKS.md, "Files and the memory under
    /// them"); a file written over takes the pages its old contents just freed.
    /// Also the seconds to write the file sent, new and then over itself, here: what the
    /// machine's file system costs with no transfer at all.
    static func fileTransfer(_ connection: Connection, mebibytes: Int, home: URL) async throws -> (rounds: [FileRound], localWrites: FileRound) {
        let source = home.appendingPathComponent("bench-file").path
        let back = home.appendingPathComponent("bench-file-back").path
        defer {
            try? FileManager.default.removeItem(atPath: source)
            try? FileManager.default.removeItem(atPath: back)
        }
        var start = ContinuousClock.now
        try writeFile(source, mebibytes: mebibytes)
        let writeNew = seconds(ContinuousClock.now - start)
        start = ContinuousClock.now
        let piece = try writeFile(source, mebibytes: mebibytes)
        let writeOver = seconds(ContinuousClock.now - start)
        let remote = "/tmp/yonder-bench-file"
        var rounds: [FileRound] = []
        for _ in 0..<2 {
            start = ContinuousClock.now
            let size = try await connection.putFile(from: source, to: remote)
            let put = seconds(ContinuousClock.now - start)
            start = ContinuousClock.now
            let got = try await connection.getFile(remote, to: back)
            let get = seconds(ContinuousClock.now - start)
            guard size == mebibytes << 20, got == size,
                let tail = FileHandle(forReadingAtPath: back), (try? tail.seek(toOffset: UInt64((mebibytes - 1) << 20))) != nil,
                (try tail.read(upToCount: 1 << 20)).map(Array.init) == piece
            else {
                throw ValidationError("the file did not come back whole (put \(size), got \(got) bytes)")
            }
            rounds.append(FileRound(put: put, get: get))
        }
        _ = try await connection.exec(["rm", "-f", remote]).collect()
        return (rounds, FileRound(put: writeNew, get: writeOver))
    }

    private func log(_ text: String) {
        FileHandle.standardError.write(Data("[yonder-bench e2e] \(text)\n".utf8))
    }
}

struct E2EReport: BenchReport {
    var coldUpSeconds: Double
    var warmUpSeconds: Double
    var coldUps: [Double]
    var warmUps: [Double]
    var pingP50Microseconds: Double
    var pingP99Microseconds: Double
    var pingMaxMicroseconds: Double
    var pingsOver10ms: Int
    var opensshEchoP50Microseconds: Double
    var opensshEchoP99Microseconds: Double
    var ratio: Double
    var p99Ratio: Double
    /// The same calls from a task that prefers the connection's executor (the session's thread).
    var pinnedP50Microseconds: Double
    var pinnedP99Microseconds: Double
    var pinnedRatio: Double
    var pinnedP99Ratio: Double
    var callsPerSecond: Double
    /// The same with `yonder.objects`, answered by a task in the agent.
    var taskCallsPerSecond: Double
    var bytesMegabytesPerSecond: Double
    var rawMegabytesPerSecond: Double
    var tunnelMegabytesPerSecond: Double
    /// putFile and getFile of new files.
    var putFileMegabytesPerSecond: Double?
    var getFileMegabytesPerSecond: Double?
    /// The same again at once, over the files the first round wrote.
    var putFileOverMegabytesPerSecond: Double?
    var getFileOverMegabytesPerSecond: Double?
    /// Writing the file sent to a new file here, then over it: the file system alone.
    var localNewFileMegabytesPerSecond: Double?
    var localFileOverMegabytesPerSecond: Double?
    var opensshUploadMegabytesPerSecond: Double?
    var opensshDownloadMegabytesPerSecond: Double?
    var tunnelUploadMegabytesPerSecond: Double?
    var tunnelDownloadMegabytesPerSecond: Double?
    /// Our tunnel with a file at both ends: read from one, written to the other.
    var tunnelFileUploadMegabytesPerSecond: Double?
    var tunnelFileDownloadMegabytesPerSecond: Double?
    /// The same again at once, over the files the first round wrote.
    var tunnelFileUploadOverMegabytesPerSecond: Double?
    var tunnelFileDownloadOverMegabytesPerSecond: Double?
    /// ssh -N -L with a file at both ends: new files, then the same written over.
    var opensshFileUploadMegabytesPerSecond: Double?
    var opensshFileDownloadMegabytesPerSecond: Double?
    var opensshFileUploadOverMegabytesPerSecond: Double?
    var opensshFileDownloadOverMegabytesPerSecond: Double?
    var fileMiB: Int
    var iterations: Int
    var agent: String

    func printTable() {
        func row(_ name: String, _ value: String) {
            print(name.padding(toLength: 46, withPad: " ", startingAt: 0) + value)
        }
        row("cold up (no container), median", String(format: "%.3f s (target < 3 s)", coldUpSeconds))
        row("warm up (all running), median", String(format: "%.3f s (target < 0.5 s)", warmUpSeconds))
        row("yonder.ping via tunnel, p50 / p99", String(format: "%.1f µs / %.1f µs", pingP50Microseconds, pingP99Microseconds))
        row("16 B echo via ssh -N -L, p50 / p99", String(format: "%.1f µs / %.1f µs", opensshEchoP50Microseconds, opensshEchoP99Microseconds))
        row("call p50 / OpenSSH echo p50", String(format: "%.2fx (target ≤ 1x)", ratio))
        row("call p99 / OpenSSH echo p99", String(format: "%.2fx (target ≤ 1.5x)", p99Ratio))
        row("on connection.executor, p50 / p99", String(format: "%.1f µs / %.1f µs", pinnedP50Microseconds, pinnedP99Microseconds))
        row("  its p50 / p99 against OpenSSH's", String(format: "%.2fx / %.2fx (targets ≤ 1x / ≤ 1.5x)", pinnedRatio, pinnedP99Ratio))
        row("slowest call; calls over 10 ms", String(format: "%.1f ms; %d of %d (target: none in 100,000)", pingMaxMicroseconds / 1000, pingsOver10ms, iterations))
        row("yonder.ping, 64 in flight", String(format: "%.0f calls/s (target ≥ 50,000)", callsPerSecond))
        row("  answered by a task (yonder.objects)", String(format: "%.0f calls/s", taskCallsPerSecond))
        row("Data round trip as attachments", String(format: "%.0f MB/s (both directions)", bytesMegabytesPerSecond))
        row("bulk echo through our tunnel", String(format: "%.0f MB/s (both directions)", tunnelMegabytesPerSecond))
        row("bulk echo through ssh -N -L", String(format: "%.0f MB/s (both directions)", rawMegabytesPerSecond))
        row("Data / our tunnel's bulk", String(format: "%.0f%% (target ≥ 80%%)", 100 * bytesMegabytesPerSecond / tunnelMegabytesPerSecond))
        row("Data / OpenSSH bulk", String(format: "%.0f%%", 100 * bytesMegabytesPerSecond / rawMegabytesPerSecond))
        row("our tunnel's bulk / OpenSSH bulk", String(format: "%.0f%%", 100 * tunnelMegabytesPerSecond / rawMegabytesPerSecond))
        if let put = putFileMegabytesPerSecond, let get = getFileMegabytesPerSecond,
            let putOver = putFileOverMegabytesPerSecond, let getOver = getFileOverMegabytesPerSecond
        {
            row("putFile / getFile, new \(fileMiB) MiB file", String(format: "%.0f / %.0f MB/s", put, get))
            row("  again, written over", String(format: "%.0f / %.0f MB/s", putOver, getOver))
            if let new = localNewFileMegabytesPerSecond, let over = localFileOverMegabytesPerSecond {
                row("writing it here, new / over (no transfer)", String(format: "%.0f / %.0f MB/s", new, over))
            }
            if let opensshUp = opensshUploadMegabytesPerSecond, let opensshDown = opensshDownloadMegabytesPerSecond,
                let oursUp = tunnelUploadMegabytesPerSecond, let oursDown = tunnelDownloadMegabytesPerSecond
            {
                row("one way up: our tunnel / ssh -N -L", String(format: "%.0f / %.0f MB/s", oursUp, opensshUp))
                row("one way down: our tunnel / ssh -N -L", String(format: "%.0f / %.0f MB/s", oursDown, opensshDown))
                row("putFile / one way up, new / over", String(format: "%.0f%% / %.0f%% of our tunnel (target ≥ 80%%)", 100 * put / oursUp, 100 * putOver / oursUp))
                row("getFile / one way down, new / over", String(format: "%.0f%% / %.0f%% of our tunnel (target ≥ 80%%)", 100 * get / oursDown, 100 * getOver / oursDown))
                row("  against ssh -N -L, up / down (over)", String(format: "%.0f%% / %.0f%%", 100 * putOver / opensshUp, 100 * getOver / opensshDown))
            }
            if let filesUp = tunnelFileUploadMegabytesPerSecond, let filesDown = tunnelFileDownloadMegabytesPerSecond,
                let filesUpOver = tunnelFileUploadOverMegabytesPerSecond, let filesDownOver = tunnelFileDownloadOverMegabytesPerSecond
            {
                row("our tunnel file to file, new: up / down", String(format: "%.0f / %.0f MB/s", filesUp, filesDown))
                row("  again, written over", String(format: "%.0f / %.0f MB/s", filesUpOver, filesDownOver))
                row("putFile / getFile against it, new", String(format: "%.0f%% / %.0f%%", 100 * put / filesUp, 100 * get / filesDown))
                row("  written over", String(format: "%.0f%% / %.0f%%", 100 * putOver / filesUpOver, 100 * getOver / filesDownOver))
            }
            if let up = opensshFileUploadMegabytesPerSecond, let down = opensshFileDownloadMegabytesPerSecond,
                let upOver = opensshFileUploadOverMegabytesPerSecond, let downOver = opensshFileDownloadOverMegabytesPerSecond,
                let opensshUp = opensshUploadMegabytesPerSecond, let opensshDown = opensshDownloadMegabytesPerSecond
            {
                row("ssh -N -L file to file, new: up / down", String(format: "%.0f / %.0f MB/s: %.0f%% / %.0f%% of its one way", up, down, 100 * up / opensshUp, 100 * down / opensshDown))
                row("  again, written over", String(format: "%.0f / %.0f MB/s: %.0f%% / %.0f%%", upOver, downOver, 100 * upOver / opensshUp, 100 * downOver / opensshDown))
            }
        }
    }
}
