import Testing
import YonderProtocol

@Suite struct FrameDecoderTests {
    @Test func splitsFramesFedOneByteAtATime() throws {
        let frames = [Message.ping(.init(nonce: 1)), .goodbye(.init(reason: "done"))].flatMap { $0.encodedFrame() }
        var decoder = FrameDecoder()
        var decoded: [Message] = []
        for byte in frames {
            decoder.append([byte])
            while let payload = try decoder.next() { decoded.append(try Message.decode(payload: payload)) }
        }
        try decoder.finish()
        #expect(decoded == [.ping(.init(nonce: 1)), .goodbye(.init(reason: "done"))])
    }

    @Test func splitsManyFramesInOneRead() throws {
        let messages = (0..<500).map { Message.result(.init(id: $0, value: .integer(Int64($0)))) }
        var decoder = FrameDecoder()
        decoder.append(messages.flatMap { $0.encodedFrame() })
        var decoded: [Message] = []
        while let payload = try decoder.next() { decoded.append(try Message.decode(payload: payload)) }
        #expect(decoded == messages)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func rejectsOversizeLengthBeforeBufferingPayload() {
        var decoder = FrameDecoder(maximumLength: 1024)
        decoder.append([0x00, 0x00, 0x04, 0x01])
        #expect(throws: ProtocolError.self) { _ = try decoder.next() }
    }

    @Test func reportsTruncatedFrameAtEndOfStream() throws {
        var decoder = FrameDecoder()
        decoder.append(Array(Message.ping(.init()).encodedFrame().dropLast()))
        #expect(try decoder.next() == nil)
        #expect(throws: ProtocolError.self) { try decoder.finish() }
    }

    /// A large frame goes into an array of its own; what follows it in the same read must
    /// still come out, in order, however the bytes are cut.
    @Test(arguments: [1 << 10, 65_536, 1_000_003, 5 << 20])
    func largeFramesInAnyPiecesKeepTheirBytesAndWhatFollows(piece: Int) throws {
        let big = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
        let stream = Frame.encode(payload: big) + Message.ping(.init(nonce: 5)).encodedFrame()
            + Frame.encode(payload: Array(big.prefix(2 << 20)))
        var decoder = FrameDecoder()
        var payloads: [[UInt8]] = []
        var offset = 0
        while offset < stream.count {
            let end = min(stream.count, offset + piece)
            decoder.append(stream[offset..<end])
            offset = end
            while let payload = try decoder.next() { payloads.append([UInt8](payload)) }
        }
        try decoder.finish()
        #expect(payloads.count == 3)
        #expect(payloads.first == big)
        #expect(try payloads.dropFirst().first.map { try Message.decode(payload: $0) } == .ping(.init(nonce: 5)))
        #expect(payloads.last == Array(big.prefix(2 << 20)))
    }

    @Test func aLargeFrameCutShortIsTruncated() throws {
        var decoder = FrameDecoder()
        let frame = Frame.encode(payload: [UInt8](repeating: 9, count: 2 << 20))
        decoder.append(frame.prefix(1 << 20))
        #expect(try decoder.next() == nil)
        #expect(decoder.bufferedByteCount == 1 << 20)
        #expect(throws: ProtocolError.self) { try decoder.finish() }
    }
}
