/// A reliable, ordered, two-way byte stream to an agent: a loopback TCP socket, or a tunnel
/// channel through SSH.
///
/// `Connection` runs the protocol over any conforming type, so the transport can change
/// without touching anything above it. `Connection` calls `read` from one task at a time and
/// `write` from one task at a time (it serializes its own writes); the two may run
/// concurrently with each other and with `close`.
public protocol ByteStream: Sendable {
    /// Waits for bytes and returns at most `maxLength` of them; returns nil once the peer has
    /// closed its side and every byte has been read.
    func read(maxLength: Int) async throws -> [UInt8]?

    /// Writes all of `bytes`, returning once the stream has taken them.
    func write(_ bytes: [UInt8]) async throws

    /// Closes both directions. A pending `read` returns nil or throws. Safe to call twice.
    func close() async
}
