import ArgumentParser
import Foundation
import YonderLocalServers
import YonderSSH
#if canImport(Glibc)
import Glibc
#endif

/// `yonder-bench ssh`: our libssh2 tunnel and SFTP against OpenSSH on the same sshd.
struct SSH: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tunnel latency and bulk throughput: YonderSSH vs OpenSSH's ssh -L and scp, same sshd.",
        discussion: """
            Starts a private sshd and a TCP echo server on 127.0.0.1, then measures in one run: \
            the round trip of a 16-byte message through our direct-tcpip tunnel and through \
            OpenSSH's `ssh -N -L` to the same echo server; bulk throughput of --bulk-mib through \
            each tunnel (echoed back, so both directions are loaded); and an upload of the same \
            size with our SFTP client and with `scp`. OpenSSH is forced to the cipher and MAC that \
            libssh2 1.10 negotiates (aes128-ctr, hmac-sha2-256).

            Example: swift run -c release yonder-bench ssh --json
            """)

    @Option(help: "Round trips measured for each latency figure.")
    var iterations = 10_000

    @Option(help: "Round trips run before measuring.")
    var warmup = 1_000

    @Option(name: .customLong("bulk-mib"), help: "MiB sent through each tunnel and uploaded by each client.")
    var bulkMiB = 1024

    @Flag(help: "Print the results as JSON.")
    var json = false

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-bench-ssh-\(getpid())")
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = { (name: String) in folder.appendingPathComponent(name).path }
        try LocalSSHServer.generateKey(at: path("host_key"))
        try LocalSSHServer.generateKey(at: path("client_key"))
        try FileManager.default.copyItem(atPath: path("client_key.pub"), toPath: path("authorized_keys"))
        let server = try LocalSSHServer(folder: folder.appendingPathComponent("sshd"), hostKey: path("host_key"), authorizedKeys: path("authorized_keys"))
        defer { server.stop() }
        let echo = try EchoServer()
        defer { echo.stop() }
        log("sshd on 127.0.0.1:\(server.port), echo server on 127.0.0.1:\(echo.port)")

        // Ours.
        let session = try await SSHSession.connect(SSHConfiguration(
            host: server.host, port: server.port, user: server.user,
            authentication: [.privateKey(path: path("client_key"))],
            hostKeys: .pinned([server.hostPublicKey]), keepAliveInterval: nil))
        let tunnel = try await session.openTunnel(host: "127.0.0.1", port: echo.port)
        log("our tunnel: \(session.cipher), \(session.mac); measuring latency")
        let ours = try await Self.latency(tunnel, iterations: iterations, warmup: warmup)
        log("our tunnel: bulk \(bulkMiB) MiB")
        let oursBulk = try await Self.bulk(tunnel, mebibytes: bulkMiB)
        await tunnel.close()

        // OpenSSH's ssh -N -L to the same echo server through the same sshd.
        let localPort = try LocalSSHServer.freePort()
        let ssh = try ChildProcess.spawn("/usr/bin/ssh", [
            "-N", "-L", "127.0.0.1:\(localPort):127.0.0.1:\(echo.port)",
            "-p", String(server.port), "-i", path("client_key"),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=\(server.knownHosts)",
            "-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha2-256", "-o", "ExitOnForwardFailure=yes",
            "\(server.user)@127.0.0.1",
        ], output: path("ssh.log"))
        defer {
            kill(ssh, SIGTERM)
            ChildProcess.wait(ssh)
        }
        for _ in 0..<250 where !LocalSSHServer.canConnect(port: localPort) { usleep(20_000) }
        let socket = try BlockingSocket(port: localPort)
        log("ssh -L: measuring latency")
        let openssh = try socket.latency(iterations: iterations, warmup: warmup)
        log("ssh -L: bulk \(bulkMiB) MiB")
        let opensshBulk = try socket.bulk(mebibytes: bulkMiB)
        socket.close()

        // SFTP upload vs scp, the same file to the same sshd.
        let file = path("upload.bin")
        try Self.makeFile(file, mebibytes: bulkMiB)
        let sftp = try await session.sftp()
        log("our SFTP: upload \(bulkMiB) MiB")
        let start = ContinuousClock.now
        try await sftp.upload(from: file, to: path("uploaded-by-yonder.bin"))
        let sftpSeconds = seconds(ContinuousClock.now - start)
        await sftp.close()
        await session.close()
        log("scp: upload \(bulkMiB) MiB")
        let scpStart = ContinuousClock.now
        try ChildProcess.run("/usr/bin/scp", [
            "-q", "-P", String(server.port), "-i", path("client_key"),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=\(server.knownHosts)",
            "-o", "Ciphers=aes128-ctr", "-o", "MACs=hmac-sha2-256",
            file, "\(server.user)@127.0.0.1:\(path("uploaded-by-scp.bin"))",
        ])
        let scpSeconds = seconds(ContinuousClock.now - scpStart)

        let megabytes = Double(bulkMiB << 20) / 1e6
        let report = SSHReport(
            cipher: session.cipher, mac: session.mac, libssh2: SSHSession.libssh2Version, iterations: iterations,
            oursP50Microseconds: ours.p50, oursP99Microseconds: ours.p99,
            opensshP50Microseconds: openssh.p50, opensshP99Microseconds: openssh.p99,
            latencyRatio: ours.p50 / openssh.p50,
            bulkMiB: bulkMiB,
            oursTunnelMBps: megabytes / oursBulk, opensshTunnelMBps: megabytes / opensshBulk,
            tunnelThroughputRatio: opensshBulk / oursBulk,
            oursSFTPMBps: megabytes / sftpSeconds, scpMBps: megabytes / scpSeconds,
            uploadThroughputRatio: scpSeconds / sftpSeconds)
        try report.emit(json: json)
    }

    private func log(_ text: String) {
        FileHandle.standardError.write(Data("[yonder-bench ssh] \(text)\n".utf8))
    }

    static func latency(_ tunnel: SSHTunnel, iterations: Int, warmup: Int) async throws -> Percentiles {
        let message = [UInt8](repeating: 0x42, count: 16)
        func roundTrip() async throws {
            try await tunnel.write(message)
            var received = 0
            while received < 16 {
                guard let chunk = try await tunnel.read(maxLength: 16 - received) else {
                    throw ValidationError("the echo server closed the tunnel")
                }
                received += chunk.count
            }
        }
        for _ in 0..<warmup { try await roundTrip() }
        var samples: [Duration] = []
        samples.reserveCapacity(iterations)
        for _ in 0..<iterations {
            let start = ContinuousClock.now
            try await roundTrip()
            samples.append(ContinuousClock.now - start)
        }
        return Percentiles(samples)
    }

    /// Seconds to send `mebibytes` through the echo and read them all back.
    static func bulk(_ tunnel: SSHTunnel, mebibytes: Int) async throws -> Double {
        let block = [UInt8](repeating: 0x5a, count: 1 << 20)
        let start = ContinuousClock.now
        let writer = Task {
            for _ in 0..<mebibytes { try await tunnel.write(block) }
        }
        var received = 0
        while received < mebibytes << 20 {
            guard let chunk = try await tunnel.read(maxLength: 1 << 20) else { break }
            received += chunk.count
        }
        try await writer.value
        return seconds(ContinuousClock.now - start)
    }

    static func makeFile(_ path: String, mebibytes: Int) throws {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        var block = [UInt8](repeating: 0, count: 1 << 20)
        for index in block.indices { block[index] = UInt8(truncatingIfNeeded: index &* 2_654_435_761 >> 7) }
        let data = Data(block)
        for _ in 0..<mebibytes { try handle.write(contentsOf: data) }
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// The figures of one benchmark run, printed as a table or as JSON.
protocol BenchReport: Encodable {
    func printTable()
}

extension BenchReport {
    func emit(json: Bool) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(self), as: UTF8.self))
        } else {
            printTable()
        }
    }
}

/// A blocking loopback TCP client with TCP_NODELAY: the client side of every baseline.
struct BlockingSocket {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { throw ValidationError("cannot connect to 127.0.0.1:\(port)") }
        EchoBaseline.noDelay(fd)
    }

    func close() { _ = Glibc.close(fd) }

    func latency(iterations: Int, warmup: Int) throws -> Percentiles {
        var message = [UInt8](repeating: 0x42, count: 16)
        var reply = [UInt8](repeating: 0, count: 16)
        func roundTrip() throws {
            _ = message.withUnsafeMutableBytes { send(fd, $0.baseAddress, 16, Int32(MSG_NOSIGNAL)) }
            var received = 0
            while received < 16 {
                let n = reply.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + received, 16 - received, 0) }
                if n <= 0 { throw ValidationError("the echo side closed the connection") }
                received += n
            }
        }
        for _ in 0..<warmup { try roundTrip() }
        var samples: [Duration] = []
        samples.reserveCapacity(iterations)
        for _ in 0..<iterations {
            let start = ContinuousClock.now
            try roundTrip()
            samples.append(ContinuousClock.now - start)
        }
        return Percentiles(samples)
    }

    /// Seconds to send `mebibytes` to a sink (`EchoServer.Mode.sink`) until it says all
    /// arrived: blocks of memory, or with `path` that file, read 1 MiB at a time.
    func upload(mebibytes: Int, from path: String? = nil) throws -> Double {
        var block = [UInt8](repeating: 0x5a, count: 1 << 20)
        let file = path.map { open($0, O_RDONLY | O_CLOEXEC) } ?? -1
        defer { if file >= 0 { Glibc.close(file) } }
        guard path == nil || file >= 0 else { throw ValidationError("cannot read \(path ?? "")") }
        let start = ContinuousClock.now
        for _ in 0..<mebibytes {
            if file >= 0, block.withUnsafeMutableBytes({ read(file, $0.baseAddress, $0.count) }) != block.count {
                throw ValidationError("cannot read a whole MiB of \(path ?? "")")
            }
            var sent = 0
            while sent < block.count {
                let n = block.withUnsafeBytes { send(fd, $0.baseAddress! + sent, block.count - sent, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { throw ValidationError("the sink closed the connection during the upload") }
                sent += n
            }
        }
        shutdown(fd, Int32(SHUT_WR))
        var answer = [UInt8](repeating: 0, count: 8)
        var received = 0
        while received < 8 {
            let n = answer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + received, 8 - received, 0) }
            if n <= 0 { break }
            received += n
        }
        let seconds = seconds(ContinuousClock.now - start)
        guard received == 8, answer.reduce(0, { $0 << 8 | Int($1) }) == mebibytes << 20 else {
            throw ValidationError("the sink did not get all \(mebibytes) MiB")
        }
        return seconds
    }

    /// Seconds to read `mebibytes` from a source (`EchoServer.Mode.source`) to its end, with
    /// `path` writing them to that file (created or replaced) as they come.
    func download(mebibytes: Int, into path: String? = nil) throws -> Double {
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        let file = path.map { open($0, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) } ?? -1
        defer { if file >= 0 { Glibc.close(file) } }
        guard path == nil || file >= 0 else { throw ValidationError("cannot write \(path ?? "")") }
        let start = ContinuousClock.now
        var received = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            if file >= 0, buffer.withUnsafeBytes({ write(file, $0.baseAddress, n) }) != n {
                throw ValidationError("cannot write \(path ?? "")")
            }
            received += n
        }
        let seconds = seconds(ContinuousClock.now - start)
        guard received == mebibytes << 20 else {
            throw ValidationError("read \(received) bytes from the source, not \(mebibytes) MiB")
        }
        return seconds
    }

    func bulk(mebibytes: Int) throws -> Double {
        let fd = fd
        let start = ContinuousClock.now
        let writer = Thread {
            let block = [UInt8](repeating: 0x5a, count: 1 << 20)
            for _ in 0..<mebibytes {
                var sent = 0
                while sent < block.count {
                    let n = block.withUnsafeBytes { send(fd, $0.baseAddress! + sent, block.count - sent, Int32(MSG_NOSIGNAL)) }
                    if n <= 0 { return }
                    sent += n
                }
            }
        }
        writer.start()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var received = 0
        while received < mebibytes << 20 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { throw ValidationError("ssh -L closed the connection during the bulk test") }
            received += n
        }
        return seconds(ContinuousClock.now - start)
    }
}

struct SSHReport: BenchReport {
    var cipher: String
    var mac: String
    var libssh2: String
    var iterations: Int
    var oursP50Microseconds: Double
    var oursP99Microseconds: Double
    var opensshP50Microseconds: Double
    var opensshP99Microseconds: Double
    var latencyRatio: Double
    var bulkMiB: Int
    var oursTunnelMBps: Double
    var opensshTunnelMBps: Double
    var tunnelThroughputRatio: Double
    var oursSFTPMBps: Double
    var scpMBps: Double
    var uploadThroughputRatio: Double

    func printTable() {
        func row(_ name: String, _ value: String) {
            print(name.padding(toLength: 46, withPad: " ", startingAt: 0) + value)
        }
        row("cipher / MAC (both sides)", "\(cipher) / \(mac) (libssh2 \(libssh2))")
        row("16 B echo, our tunnel, p50 / p99", String(format: "%.1f µs / %.1f µs", oursP50Microseconds, oursP99Microseconds))
        row("16 B echo, ssh -N -L, p50 / p99", String(format: "%.1f µs / %.1f µs", opensshP50Microseconds, opensshP99Microseconds))
        row("latency ours / OpenSSH (p50)", String(format: "%.2fx (target ≤ 1.5x)", latencyRatio))
        row("\(bulkMiB) MiB echoed, our tunnel", String(format: "%.0f MB/s", oursTunnelMBps))
        row("\(bulkMiB) MiB echoed, ssh -N -L", String(format: "%.0f MB/s", opensshTunnelMBps))
        row("tunnel throughput ours / OpenSSH", String(format: "%.0f%% (target ≥ 70%%)", tunnelThroughputRatio * 100))
        row("\(bulkMiB) MiB upload, our SFTP", String(format: "%.0f MB/s", oursSFTPMBps))
        row("\(bulkMiB) MiB upload, scp", String(format: "%.0f MB/s", scpMBps))
        row("upload throughput ours / scp", String(format: "%.0f%% (target ≥ 70%%)", uploadThroughputRatio * 100))
    }
}
