#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif

/// Cuts a byte stream into message objects, each with the binary attachments it announced
/// (PROTOCOL.md section 3, "Binary attachments"): frames through `FrameDecoder`, the JSON
/// object of a message frame checked as far as check 6, then as many binary frames as its
/// `attachments` member announces.
///
/// Errors thrown are fatal to the connection: the framing errors, and `invalid_attachment`
/// when attachments are announced wrongly, arrive at a side that did not accept them, or do
/// not match their announcement. What the object means (checks 7 to 10) is left to
/// `Message.decode(_:)`, so that a receiver can still answer a bad message with its id.
package struct MessageReader: Sendable {
    /// The frames of the stream.
    package var frames: FrameDecoder
    /// Whether this side announced `binary` in its `hello`. A message with attachments is
    /// `invalid_attachment` otherwise.
    package var acceptsAttachments: Bool
    /// The most attachments one message may announce.
    package static let maximumAttachments = 4096

    private var waiting: (object: JSONValue, lengths: [Int], received: [Data])?

    /// Makes a reader of frames up to `maximumLength` bytes.
    package init(maximumLength: Int = Frame.defaultMaximumLength, acceptsAttachments: Bool = false) {
        frames = FrameDecoder(maximumLength: maximumLength)
        self.acceptsAttachments = acceptsAttachments
    }

    /// Adds bytes read from the stream.
    package mutating func append(_ bytes: some Collection<UInt8>) {
        frames.append(bytes)
    }

    /// The next message object and its attachments, or nil when more bytes are needed.
    package mutating func next() throws(ProtocolError) -> (object: JSONValue, attachments: [Data])? {
        while true {
            guard let payload = try frames.next() else { return nil }
            if let message = try accept(payload) { return message }
        }
    }

    /// Whether the next frame is an attachment of the last message (raw bytes, not JSON).
    package var awaitsAttachment: Bool { waiting != nil }

    /// Takes the payload of the stream's next frame, cut by a `FrameDecoder` elsewhere:
    /// returns the message it completes, or nil when the message waits for more attachments.
    package mutating func accept(_ payload: Data) throws(ProtocolError) -> (object: JSONValue, attachments: [Data])? {
        if var pending = waiting {
            let index = pending.received.count
            guard payload.count == pending.lengths[index] else {
                throw ProtocolError(
                    .invalidAttachment,
                    "attachment \(index) was announced as \(pending.lengths[index]) bytes, but its frame holds \(payload.count)")
            }
            pending.received.append(payload)
            if pending.received.count == pending.lengths.count {
                waiting = nil
                return (pending.object, pending.received)
            }
            waiting = pending
            return nil
        }
        let object = try Message.decodeJSON(payload: payload)
        let lengths = try announcedAttachments(in: object)
        if lengths.isEmpty { return (object, []) }
        waiting = (object, lengths, [])
        return nil
    }

    /// Call when the stream has ended: throws if it ended inside a frame or before the
    /// attachments of the last message.
    package func finish() throws(ProtocolError) {
        try frames.finish()
        if let waiting {
            throw ProtocolError(
                .truncatedFrame,
                "the stream ended after \(waiting.received.count) of the \(waiting.lengths.count) attachments a message announced")
        }
    }

    /// The byte counts a message object announces in `attachments`.
    private func announcedAttachments(in object: JSONValue) throws(ProtocolError) -> [Int] {
        guard let member = object["attachments"], member != .null else { return [] }
        guard acceptsAttachments else {
            throw ProtocolError(
                .invalidAttachment,
                "a message announced attachments, but this side did not accept them (it sent no \"binary\": true in hello)",
                path: ["attachments"])
        }
        guard case .array(let items) = member, items.count <= Self.maximumAttachments else {
            throw ProtocolError(
                .invalidAttachment, "\"attachments\" must be an array of at most \(Self.maximumAttachments) byte counts",
                path: ["attachments"])
        }
        var lengths: [Int] = []
        lengths.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            guard case .integer(let length) = item, length >= 1, length <= frames.maximumLength else {
                throw ProtocolError(
                    .invalidAttachment,
                    "attachment \(index) must be a byte count from 1 to \(frames.maximumLength), not \(String(decoding: JSONBytes.bytes(item), as: UTF8.self))",
                    path: ["attachments", String(index)])
            }
            lengths.append(Int(length))
        }
        return lengths
    }
}
