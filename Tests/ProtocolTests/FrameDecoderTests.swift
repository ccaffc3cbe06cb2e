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
}
