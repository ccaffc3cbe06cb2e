import Foundation
import Synchronization
import Testing
import TestSupport
import YonderLocalServers
import YonderSSH

@Suite(.serialized, .enabled(if: SSHServerFixture.shouldRun))
struct TunnelTests {
    let server: SSHServerFixture
    let echo: EchoServer
    init() throws {
        server = try SSHServerFixture()
        echo = try EchoServer()
    }

    @Test func echoRoundTrip() async throws {
        let session = try await connect(server)
        let tunnel = try await session.openTunnel(host: "127.0.0.1", port: echo.port)
        for index in 0..<100 {
            let message = Array("ping \(index)".utf8)
            try await tunnel.write(message)
            var received: [UInt8] = []
            while received.count < message.count {
                guard let chunk = try await tunnel.read(maxLength: 1024) else { break }
                received += chunk
            }
            #expect(received == message)
        }
        await tunnel.close()
        await session.close()
    }

    @Test func twoHundredMebibytesArriveIntact() async throws {
        let session = try await connect(server)
        let tunnel = try await session.openTunnel(host: "127.0.0.1", port: echo.port)
        let total = 200 << 20
        let block = patternBytes(count: 1 << 20, seed: 42)
        let writer = Task {
            for _ in 0..<(total / block.count) { try await tunnel.write(block) }
            await tunnel.closeWrite()
        }
        var received = PatternVerifier(block: block)
        while received.count < total {
            guard let chunk = try await tunnel.read(maxLength: 1 << 20) else { break }
            received.add(chunk)
        }
        try await writer.value
        #expect(received.count == total)
        #expect(received.mismatchAt == nil)
        await session.close()
    }

    /// `Data` is written from where it is held, slices included (a slice's first byte is not
    /// at index 0), in order with array writes around it.
    @Test func dataWritesArriveInOrderWithArrayWrites() async throws {
        let session = try await connect(server)
        let tunnel = try await session.openTunnel(host: "127.0.0.1", port: echo.port)
        let large = Data(patternBytes(count: 3 << 20, seed: 7))
        let slice = large[(1 << 20) + 5 ..< (2 << 20) + 11]
        let pieces: [Data] = [Data("head".utf8), large, slice, Data(), Data("tail".utf8)]
        let writer = Task {
            try await tunnel.write(Array("<".utf8))
            for piece in pieces { try await tunnel.write(piece) }
            try await tunnel.write(Array(">".utf8))
            await tunnel.closeWrite()
        }
        var expected = Data("<".utf8)
        for piece in pieces { expected.append(piece) }
        expected.append(contentsOf: Array(">".utf8))
        var received = Data()
        while let chunk = try await tunnel.read(maxLength: 1 << 20) { received.append(contentsOf: chunk) }
        try await writer.value
        #expect(received.count == expected.count)
        #expect(received == expected)
        await session.close()
    }

    /// In delivery mode, every byte of a source that sends and closes arrives before the end.
    @Test func deliveryReceivesEveryByteBeforeTheEnd() async throws {
        let size = (64 << 20) + 3
        let source = try EchoServer(mode: .source(bytes: size))
        defer { source.stop() }
        let session = try await connect(server)
        for _ in 0..<3 {
            let down = try await session.openTunnel(host: "127.0.0.1", port: source.port)
            let received: Int = try await withCheckedThrowingContinuation { continuation in
                let count = Mutex(0)
                down.deliver { result in
                    switch result {
                    case .success(let bytes?): count.withLock { $0 += bytes.count }
                    case .success(nil): continuation.resume(returning: count.withLock { $0 })
                    case .failure(let error): continuation.resume(throwing: error)
                    }
                }
            }
            #expect(received == size)
            await down.close()
        }
        await session.close()
    }

    /// The one-way baselines of the benchmarks: a half-close through the tunnel reaches the
    /// sink, which answers with the count of what it got; a source's bytes arrive to its end.
    @Test func aSinkCountsWhatArrivesAndASourceEnds() async throws {
        let sink = try EchoServer(mode: .sink)
        defer { sink.stop() }
        let size = (3 << 20) + 5
        let source = try EchoServer(mode: .source(bytes: size))
        defer { source.stop() }
        let session = try await connect(server)
        let up = try await session.openTunnel(host: "127.0.0.1", port: sink.port)
        try await up.write(patternBytes(count: size, seed: 7))
        await up.closeWrite()
        var answer: [UInt8] = []
        while let chunk = try await up.read(maxLength: 64) { answer += chunk }
        #expect(answer.count == 8)
        #expect(answer.reduce(0) { $0 << 8 | Int($1) } == size)
        let down = try await session.openTunnel(host: "127.0.0.1", port: source.port)
        var received = 0
        while let chunk = try await down.read(maxLength: 1 << 20) { received += chunk.count }
        #expect(received == size)
        await session.close()
    }

    /// The file baselines of the benchmarks: a file sink writes what arrives to its file and
    /// counts it; a file source sends that file back, byte for byte.
    @Test func aFileSinkWritesWhatArrivesAndAFileSourceSendsItBack() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-file-sink-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let sink = try EchoServer(mode: .fileSink(path: path))
        defer { sink.stop() }
        let source = try EchoServer(mode: .fileSource(path: path))
        defer { source.stop() }
        let bytes = patternBytes(count: (3 << 20) + 5, seed: 11)
        let session = try await connect(server)
        let up = try await session.openTunnel(host: "127.0.0.1", port: sink.port)
        try await up.write(bytes)
        await up.closeWrite()
        var answer: [UInt8] = []
        while let chunk = try await up.read(maxLength: 64) { answer += chunk }
        #expect(answer.reduce(0) { $0 << 8 | Int($1) } == bytes.count)
        #expect(FileManager.default.contents(atPath: path).map(Array.init) == bytes)
        let down = try await session.openTunnel(host: "127.0.0.1", port: source.port)
        var received: [UInt8] = []
        while let chunk = try await down.read(maxLength: 1 << 20) { received += chunk }
        #expect(received == bytes)
        await session.close()
    }

    @Test func hundredTunnelsAtOnceOnOneSession() async throws {
        let session = try await connect(server)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<100 {
                group.addTask {
                    let tunnel = try await session.openTunnel(host: "127.0.0.1", port: echo.port)
                    let message = patternBytes(count: 64 << 10, seed: UInt64(index + 1))
                    async let sent: Void = tunnel.write(message)
                    var received: [UInt8] = []
                    while received.count < message.count {
                        guard let chunk = try await tunnel.read(maxLength: 1 << 20) else { break }
                        received += chunk
                    }
                    try await sent
                    #expect(received == message, "tunnel \(index)")
                    await tunnel.close()
                }
            }
            try await group.waitForAll()
        }
        #expect(echo.acceptedConnections >= 100)
        await session.close()
    }

    /// Tunnels, commands and an SFTP client opened all at once on one session: each gets a
    /// channel of its own kind (libssh2 keeps an opening channel's state in the session).
    @Test func channelsOfEveryKindOpenedAtOnce() async throws {
        let session = try await connect(server)
        let sftp = try await session.sftp()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<40 {
                group.addTask {
                    switch index % 3 {
                    case 0:
                        let tunnel = try await session.openTunnel(host: "127.0.0.1", port: echo.port)
                        let message = Array("tunnel \(index)\n".utf8)
                        try await tunnel.write(message)
                        var received: [UInt8] = []
                        while received.count < message.count, let chunk = try await tunnel.read(maxLength: 1 << 16) {
                            received += chunk
                        }
                        #expect(received == message, "tunnel \(index)")
                        await tunnel.close()
                    case 1:
                        let result = try await session.run("echo command \(index)")
                        #expect(result.stdoutText == "command \(index)\n", "command \(index)")
                    default:
                        let missing = try await sftp.attributes("/nonexistent-\(index)")
                        #expect(missing == nil)
                        let root = try await sftp.attributes("/")
                        #expect(root?.isDirectory == true, "stat \(index)")
                    }
                }
            }
            try await group.waitForAll()
        }
        await sftp.close()
        await session.close()
    }

    @Test func aClosedPortFailsWithChannelFailed() async throws {
        let session = try await connect(server)
        let port = try LocalSSHServer.freePort()
        let error = await #expect(throws: SSHError.self) { try await session.openTunnel(host: "127.0.0.1", port: port) }
        #expect(error?.code == .channelFailed)
        #expect(error?.libssh2Code != nil)
        // The session survives a refused channel.
        #expect(try await session.run("echo ok").stdoutText == "ok\n")
        await session.close()
    }

    @Test func readReturnsNilWhenTheFarSideCloses() async throws {
        let session = try await connect(server)
        let tunnel = try await session.openTunnel(host: "127.0.0.1", port: echo.port)
        try await tunnel.write(Array("bye".utf8))
        await tunnel.closeWrite()
        var received: [UInt8] = []
        while let chunk = try await tunnel.read(maxLength: 100) { received += chunk }
        #expect(received == Array("bye".utf8))
        await session.close()
    }
}
