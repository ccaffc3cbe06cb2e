// The fuzz target of the frame decoder and the message codec (libFuzzer). Built with
// scripts/fuzz.sh (`-sanitize=fuzzer,address -D YONDER_FUZZ`), it is fuzzed from seeds made of
// protocol/vectors/. Built plainly, it is a program that replays files through the same
// checks: `yonder-fuzz FILE…`. CI's fuzzing starts from Tests/Fuzz/corpus/, so a finding
// kept there stays fixed.
#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import YonderProtocol

/// One input: the first byte chooses how the rest is cut into reads (1 to 256 bytes each);
/// the rest is the stream a peer sent. Properties checked, besides "no crash":
/// - every payload the decoder returns has the length its prefix said, within the limit;
/// - a message that decodes encodes to a payload that decodes to the same message;
/// - the agent's handshake takes any decoded message without trapping;
/// - the message reader, attachments accepted, returns only attachments of the lengths
///   their message announced, and a message with attachments survives its frames;
/// - a message's `arguments` or `value` decodes as a typed struct without trapping, and what
///   decodes encodes again.
func fuzzOne(_ data: UnsafeBufferPointer<UInt8>) {
    guard let first = data.first else { return }
    let piece = Int(first) + 1
    let stream = data.dropFirst()
    readMessages(stream, piece: piece)
    var decoder = FrameDecoder(maximumLength: 1 << 16)
    var handshake = AgentHandshake(token: "fuzz-token-0123456789", agentNonce: Array(repeating: 7, count: 32))
    var offset = stream.startIndex
    while offset < stream.endIndex {
        let end = min(stream.endIndex, offset + piece)
        decoder.append(stream[offset..<end])
        offset = end
        while true {
            let payload: Data?
            do {
                payload = try decoder.next()
            } catch {
                return  // a fatal framing error: the stream ends here, as on a connection
            }
            guard let payload else { break }
            precondition(!payload.isEmpty && payload.count <= decoder.maximumLength, "a payload outside the frame limits")
            guard let message = try? Message.decode(payload: payload) else { continue }
            let again = try? Message.decode(payload: message.encodedPayload())
            precondition(again == message, "\(message) did not survive encode and decode: \(String(describing: again))")
            _ = try? handshake.receive(message)
        }
    }
    try? decoder.finish()
}

/// The same stream through `MessageReader`, attachments accepted.
func readMessages(_ stream: Slice<UnsafeBufferPointer<UInt8>>, piece: Int) {
    var reader = MessageReader(maximumLength: 1 << 16, acceptsAttachments: true)
    var offset = stream.startIndex
    while offset < stream.endIndex {
        let end = min(stream.endIndex, offset + piece)
        reader.append(stream[offset..<end])
        offset = end
        while true {
            let next: (object: JSONValue, attachments: [Data])?
            do {
                next = try reader.next()
            } catch {
                return  // fatal, as on a connection
            }
            guard let (object, attachments) = next else { break }
            for member in ["arguments", "value"] {
                if let value = object[member] { decodeTyped(value, attachments: attachments) }
            }
            if case .array(let lengths)? = object["attachments"] {
                precondition(lengths.count == attachments.count, "attachments other than announced")
                for (length, attachment) in zip(lengths, attachments) {
                    precondition(length == .integer(Int64(attachment.count)), "an attachment of another length than announced")
                }
            } else {
                precondition(attachments.isEmpty, "attachments no message announced")
            }
            guard let message = try? Message.decode(object).with(attachments: attachments), !message.attachments.isEmpty else { continue }
            var again = MessageReader(maximumLength: 1 << 20, acceptsAttachments: true)
            again.append(message.encodedFrame())
            let decoded = (try? again.next()).flatMap { $0 }.flatMap { try? Message.decode($0.object).with(attachments: $0.attachments) }
            precondition(decoded == message, "a message with attachments did not survive its frames")
        }
    }
}

@main
enum FuzzMain {
    static func main() {
        #if YONDER_FUZZ
        // libFuzzer's driver, with this program's arguments (-max_total_time=…, corpus folders).
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            fuzzOne(UnsafeBufferPointer(start: data, count: size))
            return 0
        })
        #else
        replay(CommandLine.arguments.dropFirst())
        #endif
    }

    /// Runs each file through `fuzzOne`.
    static func replay(_ files: ArraySlice<String>) {
        guard !files.isEmpty else {
            print("usage: yonder-fuzz FILE…  (replays fuzz inputs; scripts/fuzz.sh fuzzes)")
            exit(2)
        }
        for path in files {
            guard let file = fopen(path, "rb") else {
                print("yonder-fuzz: cannot read \(path)")
                exit(1)
            }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = fread(&buffer, 1, buffer.count, file)
                if count <= 0 { break }
                bytes += buffer[0..<count]
            }
            fclose(file)
            bytes.withUnsafeBufferPointer { fuzzOne($0) }
        }
        print("yonder-fuzz: \(files.count) inputs replayed")
    }
}

#if YONDER_FUZZ
/// libFuzzer's entry point, for when its own `main` is the one linked.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    fuzzOne(UnsafeBufferPointer(start: data, count: size))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32
#endif

/// Every kind of field the tree coders treat on their own.
struct Typed: Codable {
    var i: Int?
    var small: Int8?
    var unsigned: UInt64?
    var d: Double?
    var f: Float?
    var s: String?
    var b: Bool?
    var data: Data?
    var url: URL?
    var decimal: Decimal?
    var list: [Int?]?
    var byNumber: [Int: String]?
    var nested: [Typed]?
    var any: JSONValue?
}

func decodeTyped(_ value: JSONValue, attachments: [Data]) {
    guard let typed = try? JSONBytes.decode(Typed.self, from: value, path: [], attachments: attachments) else { return }
    var collected: [Data]? = []
    do {
        _ = try JSONBytes.encode(typed, attachments: &collected)
    } catch {
        preconditionFailure("\(typed) decoded but does not encode: \(error)")
    }
}
