#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Synchronization
import YonderProtocol

/// Turns the bytes a stream delivers on its own thread into messages, in order.
///
/// Short messages, which are nearly all, are decoded on the delivering thread: a reply
/// resumes its caller with no hop. A frame of `inlineLimit` bytes or more (a large result)
/// is decoded by a task instead, so that the stream's thread, which may serve other
/// connections (the event loop of TCP streams) or other channels (an SSH session's), is not
/// held for the time its JSON takes to parse; messages after it wait for it, so the order
/// (a call's output and logs before its result) is kept.
final class Receiver: Sendable {
    enum Event {
        case message(JSONValue, [Data])
        case malformed(ProtocolError)
        case ended
        case failed(any Error)
    }

    /// Payloads of this size or more are decoded off the delivering thread.
    static let inlineLimit = 64 << 10

    private enum Work {
        case payload(Data)
        case end
    }

    private struct Shared {
        var frames: FrameDecoder
        /// Frames cut but not yet decoded, waiting for the task (in order).
        var queue: [Work] = []
        /// A task decodes the queue: everything new goes behind it.
        var draining = false
        /// A framing error or the end happened: nothing more is read.
        var over = false
    }

    private let shared: Mutex<Shared>
    /// The message assembly (JSON and attachments); used by one side at a time: the
    /// delivering thread while nothing drains, the task while it does.
    private let assembly: Mutex<MessageReader>
    private let emit: @Sendable (Event) -> Void

    init(_ reader: MessageReader, emit: @escaping @Sendable (Event) -> Void) {
        shared = Mutex(Shared(frames: reader.frames))
        var assembly = reader
        assembly.frames = FrameDecoder(maximumLength: reader.frames.maximumLength)
        self.assembly = Mutex(assembly)
        self.emit = emit
    }

    /// Handles what the handshake read ahead of the first message.
    func start() {
        receive(.bytes([]))
    }

    /// Takes one event of the stream (called by one thread at a time).
    func receive(_ event: ByteStreamEvent) {
        var cut: [Work] = []
        let inline: Bool
        do throws(ProtocolError) {
            inline = try shared.withLock { shared throws(ProtocolError) -> Bool in
                guard !shared.over else { return false }
                switch event {
                case .bytes(let bytes):
                    shared.frames.append(bytes)
                    while let payload = try shared.frames.next() { cut.append(.payload(payload)) }
                case .end:
                    try shared.frames.finish()
                    cut.append(.end)
                    shared.over = true
                case .failed:
                    shared.over = true
                }
                if shared.draining {
                    shared.queue += cut
                    cut = []
                    return false
                }
                return true
            }
        } catch {
            shared.withLock { $0.over = true }
            emit(.malformed(error))
            return
        }
        if case .failed(let error) = event {
            emit(.failed(error))
            return
        }
        guard inline else { return }
        for (index, work) in cut.enumerated() {
            if case .payload(let payload) = work, payload.count >= Self.inlineLimit, !assembly.withLock({ $0.awaitsAttachment }) {
                // From here on, a task decodes, and what comes later waits behind it.
                let rest = Array(cut[index...])
                shared.withLock { shared in
                    shared.queue = rest + shared.queue
                    shared.draining = true
                }
                Task { self.drain() }
                return
            }
            guard process(work) else { return }
        }
    }

    /// Decodes one frame (or the end) and passes on what it completes; false after an error.
    private func process(_ work: Work) -> Bool {
        let outcome = assembly.withLock { reader -> Result<(JSONValue, [Data])?, ProtocolError> in
            switch work {
            case .payload(let payload): Result { () throws(ProtocolError) in try reader.accept(payload) }
            case .end: Result { () throws(ProtocolError) in try reader.finish(); return nil }
            }
        }
        switch outcome {
        case .success(let message?):
            emit(.message(message.0, message.1))
        case .success(nil):
            if case .end = work { emit(.ended) }
        case .failure(let error):
            shared.withLock { $0.over = true }
            emit(.malformed(error))
            return false
        }
        return true
    }

    /// The task's side: decodes the queue until it is empty, then lets the delivering thread
    /// decode again.
    private func drain() {
        while true {
            let work = shared.withLock { shared -> Work? in
                if shared.queue.isEmpty {
                    shared.draining = false
                    return nil
                }
                return shared.queue.removeFirst()
            }
            guard let work, process(work) else { return }
        }
    }
}
