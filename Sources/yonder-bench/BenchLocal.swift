import ArgumentParser
import Foundation
import Yonder
import YonderLocalServers
#if canImport(Glibc)
import Glibc
#endif

/// `yonder-bench local`: calls to a release agent on loopback, next to a raw TCP echo.
struct Local: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call latency and throughput against a yonder-agent on 127.0.0.1.",
        discussion: """
            Starts the yonder-agent found beside this executable (or --agent) on a free loopback \
            port, then measures in one run: a raw 16-byte TCP echo round trip (the baseline, its \
            own echo thread, TCP_NODELAY on both ends), the no-op yonder.ping call (from any thread, \
            and from a task that prefers the connection's executor), throughput with \
            64 calls in flight, and a large argument round trip.

            Example: swift run -c release yonder-bench local --json
            """)

    @Option(help: "Round trips measured for each latency figure.")
    var iterations = 10_000

    @Option(help: "Round trips run before measuring.")
    var warmup = 2_000

    @Option(help: "Calls made in the throughput test.")
    var calls = 100_000

    @Option(help: "Calls kept in flight in the throughput test.")
    var inFlight = 64

    @Option(name: .customLong("large-mib"), help: "Size of the large argument, in MiB (it must fit the 64 MiB frame limit with its envelope).")
    var largeMiB = 60

    @Option(name: .customLong("bytes-mib"), help: "Size of the Data argument sent as a binary attachment, in MiB (at most 64, the frame limit).")
    var bytesMiB = 64

    @Option(help: "The yonder-agent executable; defaults to the one beside this program.")
    var agent: String?

    @Flag(help: "Print the results as JSON.")
    var json = false

    func run() async throws {
        let echo = try EchoBaseline.measure(iterations: iterations, warmup: warmup)
        let process = try LocalAgent.start(executable: agent ?? LocalAgent.besideThisProgram("yonder-agent"))
        defer { process.stop() }
        var configuration = Connection.Configuration()
        configuration.keepAliveInterval = nil
        let connection = try await process.connect(configuration: configuration)

        let ping = try await Self.pingLatency(connection, iterations: iterations, warmup: warmup)
        let pinned = try await withTaskExecutorPreference(connection.executor) {
            try await Self.pingLatency(connection, iterations: iterations, warmup: warmup)
        }

        let typed = try await Self.typedLatency(connection, iterations: iterations, warmup: warmup)
        let throughput = try await Self.throughput(connection, calls: calls, inFlight: inFlight)
        let taskThroughput = try await Self.throughput(connection, calls: calls, inFlight: inFlight, function: "yonder.objects")
        let large = try await Self.largeRoundTrip(connection, mebibytes: largeMiB)
        let bytes = try await Self.bytesRoundTrip(connection, mebibytes: bytesMiB)
        await connection.close()

        let report = Report(
            echoP50Microseconds: echo.p50, echoP99Microseconds: echo.p99,
            pingP50Microseconds: ping.p50, pingP99Microseconds: ping.p99,
            pingOverEcho: ping.p50 / echo.p50,
            pinnedP50Microseconds: pinned.p50, pinnedP99Microseconds: pinned.p99, pinnedOverEcho: pinned.p50 / echo.p50,
            typedP50Microseconds: typed.p50, typedP99Microseconds: typed.p99,
            callsPerSecond: throughput, taskCallsPerSecond: taskThroughput, inFlight: inFlight,
            largeMiB: largeMiB, largeSeconds: large, largeMegabytesPerSecond: Double(2 * largeMiB << 20) / large / 1e6,
            bytesMiB: bytesMiB, bytesSeconds: bytes, bytesMegabytesPerSecond: Double(2 * bytesMiB << 20) / bytes / 1e6,
            iterations: iterations, agent: "\(connection.agent)")
        try report.emit(json: json)
    }

    /// p50 and p99 of sequential no-op `yonder.ping` calls, or calls of `function`.
    static func pingLatency(
        _ connection: Connection, iterations: Int, warmup: Int, function: String = "yonder.ping", arguments: JSONValue = .null
    ) async throws -> Percentiles {
        for _ in 0..<warmup { _ = try await connection.call(function, arguments: arguments) }
        var samples: [Duration] = []
        samples.reserveCapacity(iterations)
        for _ in 0..<iterations {
            let start = ContinuousClock.now
            _ = try await connection.call(function, arguments: arguments)
            samples.append(ContinuousClock.now - start)
        }
        return Percentiles(samples)
    }

    /// p50 and p99 of sequential typed calls of a small struct (`PingSample`), which add the
    /// client's encoding and decoding of a `Codable` value to the no-op call.
    static func typedLatency(_ connection: Connection, iterations: Int, warmup: Int) async throws -> Percentiles {
        let sample = Sample(name: "sample", values: [1.5, -2.25, 1e-3], count: 42)
        for _ in 0..<warmup { _ = try await connection.run(PingSample.self, sample) }
        var samples: [Duration] = []
        samples.reserveCapacity(iterations)
        for _ in 0..<iterations {
            let start = ContinuousClock.now
            let echoed = try await connection.run(PingSample.self, sample)
            samples.append(ContinuousClock.now - start)
            guard echoed == sample else { throw ValidationError("yonder.ping answered \(echoed)") }
        }
        return Percentiles(samples)
    }

    /// Calls of `function` per second with `inFlight` at a time: `yonder.ping` is answered on
    /// the agent's event loop, `yonder.objects` (no objects: an empty list) by a task of its own,
    /// as a user function is.
    static func throughput(_ connection: Connection, calls: Int, inFlight: Int, function: String = "yonder.ping") async throws -> Double {
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<inFlight {
                let share = calls / inFlight + (worker < calls % inFlight ? 1 : 0)
                group.addTask {
                    for _ in 0..<share { _ = try await connection.call(function) }
                }
            }
            try await group.waitForAll()
        }
        return Double(calls) / seconds(ContinuousClock.now - start)
    }

    /// Sends `mebibytes` of `Data` to `yonder.ping` and back, typed, so that it travels as a
    /// binary attachment both ways; returns the best of three.
    static func bytesRoundTrip(_ connection: Connection, mebibytes: Int) async throws -> Double {
        let data = Data((0..<(mebibytes << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        var best = Double.infinity
        for _ in 0..<3 {
            let start = ContinuousClock.now
            let echoed = try await connection.run(PingBytes.self, data)
            best = min(best, seconds(ContinuousClock.now - start))
            guard echoed == data else { throw ValidationError("yonder.ping did not echo the bytes") }
        }
        return best
    }

    /// Sends a `mebibytes`-sized string to `yonder.ping` and back; returns the best of three.
    static func largeRoundTrip(_ connection: Connection, mebibytes: Int) async throws -> Double {
        let text = String(repeating: "y", count: mebibytes << 20)
        let argument = JSONValue.string(text)
        var best = Double.infinity
        for _ in 0..<3 {
            let start = ContinuousClock.now
            let echoed = try await connection.call("yonder.ping", arguments: argument)
            best = min(best, seconds(ContinuousClock.now - start))
            guard case .string(let back) = echoed, back.utf8.count == text.utf8.count else {
                throw ValidationError("yonder.ping did not echo the large argument")
            }
        }
        return best
    }
}

/// The no-op built-in seen as a typed function of bytes: its `Data` goes as an attachment,
/// and it answers with the same.
struct PingBytes: RemoteFunction {
    static var remoteName: String { "yonder.ping" }
    static func run(_ input: Data) async throws -> Data { input }
}

/// The figures of one run.
struct Report: BenchReport {
    var echoP50Microseconds: Double
    var echoP99Microseconds: Double
    var pingP50Microseconds: Double
    var pingP99Microseconds: Double
    var pingOverEcho: Double
    /// The same calls from a task that prefers the connection's executor.
    var pinnedP50Microseconds: Double
    var pinnedP99Microseconds: Double
    var pinnedOverEcho: Double
    /// Typed calls of a small struct.
    var typedP50Microseconds: Double
    var typedP99Microseconds: Double
    var callsPerSecond: Double
    /// The same with `yonder.objects`, answered by a task.
    var taskCallsPerSecond: Double
    var inFlight: Int
    var largeMiB: Int
    var largeSeconds: Double
    var largeMegabytesPerSecond: Double
    var bytesMiB: Int
    var bytesSeconds: Double
    var bytesMegabytesPerSecond: Double
    var iterations: Int
    var agent: String

    func printTable() {
        func row(_ name: String, _ value: String) {
            print(name.padding(toLength: 44, withPad: " ", startingAt: 0) + value)
        }
        print("yonder-bench local — \(agent), \(iterations) round trips per latency figure")
        row("raw TCP echo, 16 B, p50 / p99", String(format: "%.1f µs / %.1f µs", echoP50Microseconds, echoP99Microseconds))
        row("yonder.ping call, p50 / p99", String(format: "%.1f µs / %.1f µs", pingP50Microseconds, pingP99Microseconds))
        row("ping p50 / echo p50", String(format: "%.2fx (target ≤ 1.5x)", pingOverEcho))
        row("on connection.executor, p50 / p99", String(format: "%.1f µs / %.1f µs", pinnedP50Microseconds, pinnedP99Microseconds))
        row("  its p50 / echo p50", String(format: "%.2fx (target ≤ 1.5x)", pinnedOverEcho))
        row("typed call of a small struct, p50 / p99", String(format: "%.1f µs / %.1f µs", typedP50Microseconds, typedP99Microseconds))
        row("throughput, \(inFlight) calls in flight", String(format: "%.0f calls/s", callsPerSecond))
        row("  answered by a task (yonder.objects)", String(format: "%.0f calls/s", taskCallsPerSecond))
        row("\(largeMiB) MiB argument round trip", String(format: "%.3f s, %.0f MB/s (both directions)", largeSeconds, largeMegabytesPerSecond))
        row("\(bytesMiB) MiB Data round trip (attachment)", String(format: "%.3f s, %.0f MB/s (both directions)", bytesSeconds, bytesMegabytesPerSecond))
    }
}

/// p50, p99 and the slowest of latency samples, in microseconds, and how many took over 10 ms.
struct Percentiles {
    var p50: Double
    var p99: Double
    var max: Double = 0
    var over10ms = 0

    init(p50: Double, p99: Double) {
        self.p50 = p50
        self.p99 = p99
    }

    init(_ samples: [Duration]) {
        let sorted = samples.map { Double($0.components.attoseconds) / 1e12 + Double($0.components.seconds) * 1e6 }.sorted()
        p50 = sorted[sorted.count / 2]
        p99 = sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))]
        max = sorted.last ?? 0
        over10ms = sorted.count - (sorted.firstIndex { $0 > 10_000 } ?? sorted.count)
    }
}

/// The baseline: a 16-byte round trip over a loopback TCP socket to an echo thread, with
/// blocking sockets and TCP_NODELAY on both ends.
enum EchoBaseline {
    static func measure(iterations: Int, warmup: Int) throws -> Percentiles {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                bind(listener, raw, length) == 0 && listen(listener, 1) == 0 && getsockname(listener, raw, &length) == 0
            }
        }
        guard bound else { throw ValidationError("could not open the echo baseline's loopback socket") }
        let server = Thread {
            let peer = accept(listener, nil, nil)
            guard peer >= 0 else { return }
            noDelay(peer)
            var buffer = [UInt8](repeating: 0, count: 64)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(peer, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                _ = buffer.withUnsafeBytes { send(peer, $0.baseAddress, n, Int32(MSG_NOSIGNAL)) }
            }
            close(peer)
        }
        server.start()

        let client = try BlockingSocket(port: Int(UInt16(bigEndian: address.sin_port)))
        defer { client.close() }
        return try client.latency(iterations: iterations, warmup: warmup)
    }

    static func noDelay(_ socket: Int32) {
        var on: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
    }
}

