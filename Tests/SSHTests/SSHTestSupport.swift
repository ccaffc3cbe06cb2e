import Foundation
import TestSupport
import YonderSSH

/// A configuration for the fixture's server with its default client key and known_hosts.
func configuration(
    _ server: SSHServerFixture,
    authentication: [SSHAuthentication]? = nil,
    hostKeys: HostKeyPolicy? = nil,
    keepAlive: Duration? = .seconds(15)
) -> SSHConfiguration {
    SSHConfiguration(
        host: server.host, port: server.port, user: server.user,
        authentication: authentication ?? [.privateKey(path: server.clientKey)],
        hostKeys: hostKeys ?? .knownHosts(server.knownHosts),
        connectTimeout: .seconds(30),
        keepAliveInterval: keepAlive,
        // No background shell: a test that kills sshd must not kill a shell in the middle of
        // the user's shell start-up files (some leave lock files behind when killed).
        requestInteractiveMode: false)
}

/// Connects to the fixture's server as its default client.
func connect(_ server: SSHServerFixture) async throws -> SSHSession {
    try await SSHSession.connect(configuration(server))
}

/// Deterministic pseudo-random bytes (xorshift), so a corrupted byte is caught.
func patternBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { buffer in
        var index = 0
        while index < count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            var word = state
            for _ in 0..<8 where index < count {
                buffer[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
    }
    return bytes
}

/// Checks a stream of bytes against a repeating block, chunk by chunk (memcmp, so large
/// transfers verify quickly even in debug builds).
struct PatternVerifier {
    let block: [UInt8]
    private(set) var count = 0
    private(set) var mismatchAt: Int?

    init(block: [UInt8]) { self.block = block }

    mutating func add(_ chunk: [UInt8]) {
        chunk.withUnsafeBytes { received in
            block.withUnsafeBytes { expected in
                var done = 0
                while done < received.count {
                    let offset = (count + done) % expected.count
                    let n = min(received.count - done, expected.count - offset)
                    if mismatchAt == nil && memcmp(received.baseAddress! + done, expected.baseAddress! + offset, n) != 0 {
                        let first = (0..<n).first { received[done + $0] != expected[offset + $0] } ?? 0
                        mismatchAt = count + done + first
                    }
                    done += n
                }
            }
        }
        count += chunk.count
    }
}
