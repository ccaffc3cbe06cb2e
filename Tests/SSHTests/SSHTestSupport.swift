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
        connectTimeout: .seconds(10),
        keepAliveInterval: keepAlive)
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

/// FNV-1a over bytes, to compare large transfers without keeping both copies.
struct Checksum {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325
    private(set) var count = 0
    mutating func add(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            value = (value ^ UInt64(byte)) &* 0x100_0000_01b3
            count += 1
        }
    }
}
