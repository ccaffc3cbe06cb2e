#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif

/// Framing: a 4-byte big-endian unsigned length N, then N bytes of UTF-8 JSON.
package enum Frame {
    /// The largest payload accepted unless both sides agree on another limit: 64 MiB.
    package static let defaultMaximumLength = 64 * 1024 * 1024

    /// The 4-byte length prefix followed by `payload`.
    package static func encode(payload: some Collection<UInt8>) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(4 + payload.count)
        appendPrefix(UInt32(payload.count), to: &bytes)
        bytes.append(contentsOf: payload)
        return bytes
    }

    package static func appendPrefix(_ length: UInt32, to bytes: inout [UInt8]) {
        bytes.append(UInt8(truncatingIfNeeded: length >> 24))
        bytes.append(UInt8(truncatingIfNeeded: length >> 16))
        bytes.append(UInt8(truncatingIfNeeded: length >> 8))
        bytes.append(UInt8(truncatingIfNeeded: length))
    }
}

/// A piece of the bytes of one or more frames, as a writer takes them: bytes made for the
/// frame (a message's JSON, a length prefix), or an attachment's `Data`, written from where it
/// is held rather than copied into a bigger buffer first.
package enum FramePiece: Sendable, Hashable {
    case bytes([UInt8])
    case data(Data)

    /// The number of bytes.
    package var count: Int {
        switch self {
        case .bytes(let bytes): bytes.count
        case .data(let data): data.count
        }
    }

    /// Calls `body` with the bytes.
    package func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .bytes(let bytes): try bytes.withUnsafeBytes(body)
        case .data(let data): try data.withUnsafeBytes(body)
        }
    }

    /// Appends the bytes to `out`.
    package func append(to out: inout [UInt8]) {
        withUnsafeBytes { out.append(contentsOf: $0) }
    }
}

/// Cuts a byte stream into frame payloads, however the bytes arrive: one at a time, or many
/// frames in one read.
///
/// A zero length or a length over `maximumLength` is reported as soon as the prefix is
/// read, before any payload is buffered, so a hostile length cannot make the receiver
/// allocate.
package struct FrameDecoder: Sendable {
    /// The largest payload accepted.
    package var maximumLength: Int
    private var buffer: [UInt8] = []
    private var start = 0
    /// A large frame received straight into a `Data` of its own, sized from its prefix: its
    /// length, the payload, and how much of it has arrived. Its bytes are copied once, and the
    /// payload never grows.
    private var large: (length: Int, payload: Data, filled: Int)?

    /// Payloads from this size on are received into their own `Data`.
    static let directLength = 1 << 20

    /// Makes a decoder that accepts payloads of up to `maximumLength` bytes.
    package init(maximumLength: Int = Frame.defaultMaximumLength) {
        self.maximumLength = maximumLength
    }

    /// Bytes received but not yet returned as a payload.
    package var bufferedByteCount: Int {
        buffer.count - start + (large.map { 4 + $0.filled } ?? 0)
    }

    /// Adds bytes read from the stream.
    package mutating func append(_ bytes: some Collection<UInt8>) {
        if var frame = large {
            // Taken out first, so that the payload has one owner and is written in place.
            large = nil
            let taken = min(frame.length - frame.filled, bytes.count)
            Self.fill(&frame, with: bytes.prefix(taken))
            large = frame
            if taken < bytes.count { appendToBuffer(bytes.dropFirst(taken)) }
            return
        }
        appendToBuffer(bytes)
    }

    private static func fill(_ frame: inout (length: Int, payload: Data, filled: Int), with bytes: some Collection<UInt8>) {
        let filled = frame.filled
        frame.payload.withUnsafeMutableBytes { payload in
            UnsafeMutableRawBufferPointer(rebasing: payload[filled..<(filled + bytes.count)]).copyBytes(from: bytes)
        }
        frame.filled += bytes.count
    }

    private mutating func appendToBuffer(_ bytes: some Collection<UInt8>) {
        if start > 0, start >= buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete payload, or nil when more bytes are needed.
    package mutating func next() throws(ProtocolError) -> Data? {
        if let frame = large {
            guard frame.filled == frame.length else { return nil }
            large = nil
            return frame.payload
        }
        let buffered = buffer.count - start
        guard buffered >= 4 else { return nil }
        let length =
            Int(buffer[start]) << 24 | Int(buffer[start + 1]) << 16
            | Int(buffer[start + 2]) << 8 | Int(buffer[start + 3])
        if length == 0 {
            throw ProtocolError(.emptyFrame, "a frame's length prefix was 0; every frame holds one JSON object")
        }
        if length > maximumLength {
            throw ProtocolError(
                .frameTooLarge,
                "a frame announced \(length) bytes, over the maximum of \(maximumLength); send large data in pieces or raise the limit in hello"
            )
        }
        guard buffered >= 4 + length else {
            if length >= Self.directLength {
                // Allocated only now that the length has passed the checks.
                var frame = (length: length, payload: LargeBuffer.data(count: length), filled: 0)
                Self.fill(&frame, with: buffer[(start + 4)...])
                buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
                start = 0
                large = frame
            }
            return nil
        }
        let payload = Data(buffer[(start + 4)..<(start + 4 + length)])
        start += 4 + length
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
            start = 0
        }
        return payload
    }

    /// Call when the stream has ended: throws if it ended inside a frame.
    package func finish() throws(ProtocolError) {
        if bufferedByteCount > 0 {
            throw ProtocolError(
                .truncatedFrame,
                "the stream ended inside a frame (\(bufferedByteCount) bytes of an unfinished frame)"
            )
        }
    }
}
