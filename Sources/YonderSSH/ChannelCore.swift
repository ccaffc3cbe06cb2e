internal import CLibSSH2
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a remote command ended.
public enum SSHExitStatus: Sendable, Equatable, CustomStringConvertible {
    /// It exited with this status.
    case exited(Int32)
    /// A signal killed it (the name without `SIG`, as the server sent it).
    case signaled(String)

    /// The status a shell would report: the exit status, or 128 + the signal's number.
    public var shellStatus: Int32 {
        switch self {
        case .exited(let status): status
        case .signaled(let name): 128 + (Self.signalNumbers[name] ?? 0)
        }
    }

    public var description: String {
        switch self {
        case .exited(let status): "exit status \(status)"
        case .signaled(let name): "killed by SIG\(name)"
        }
    }

    private static let signalNumbers: [String: Int32] = [
        "HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "FPE": 8, "KILL": 9, "SEGV": 11,
        "PIPE": 13, "ALRM": 14, "TERM": 15, "USR1": 10, "USR2": 12,
    ]
}

/// A FIFO of bytes with cheap removal from the front.
struct ByteQueue {
    private var storage: [UInt8] = []
    private var head = 0

    var count: Int { storage.count - head }
    var isEmpty: Bool { count == 0 }

    mutating func append(_ pointer: UnsafeRawPointer, _ length: Int) {
        if head > 0 && head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        }
        storage.append(contentsOf: UnsafeRawBufferPointer(start: pointer, count: length))
    }

    mutating func take(_ maxLength: Int) -> [UInt8] {
        let n = min(maxLength, count)
        let bytes = Array(storage[head..<(head + n)])
        head += n
        if head == storage.count {
            storage.removeAll(keepingCapacity: storage.capacity <= 1 << 20)
            head = 0
        } else if head > 1 << 20 {
            storage.removeFirst(head)
            head = 0
        }
        return bytes
    }
}

/// One SSH channel, driven by the session loop: it moves queued writes into libssh2, reads
/// the channel's streams into bounded buffers (a full buffer stops reading, so the SSH window
/// pushes back on the sender), hands bytes to waiting readers, and collects the exit status.
///
/// Every member is touched only on the loop thread.
final class ChannelCore: LoopTask, @unchecked Sendable {
    // Safe: confined to its session's loop thread; other threads reach it only through
    // `SessionLoop.submit`.
    enum Kind { case command, tunnel }

    typealias ReadResult = Result<[UInt8]?, SSHError>
    private struct Reader {
        let maxLength: Int
        let resume: (ReadResult) -> Void
    }
    /// Bytes to write, held as they were given: an array, or a `Data` (a large attachment),
    /// written from where it is held.
    enum Outgoing {
        case bytes([UInt8])
        case data(Data)

        var count: Int {
            switch self {
            case .bytes(let bytes): bytes.count
            case .data(let data): data.count
            }
        }

        func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
            switch self {
            case .bytes(let bytes): bytes.withUnsafeBytes(body)
            case .data(let data): data.withUnsafeBytes(body)
            }
        }
    }

    private struct Write {
        let bytes: Outgoing
        var offset: Int
        let stream: Int32
        let resume: (Result<Void, SSHError>) -> Void
    }

    let kind: Kind
    let label: String
    private var raw: OpaquePointer?
    private var buffers = [ByteQueue(), ByteQueue()]
    private var readers: [Reader?] = [nil, nil]
    /// Set by `deliver(to:)`: stream 0's bytes go there as they are read (nil ends it).
    private var receiver: ((ReadResult) -> Void)?
    private var writes: [Write] = []
    private var remoteEOF = false
    private var wantEOF = false
    private var eofSent = false
    private var closeRequested: SSHError?
    private var closeSent = false
    private var exitStatus: SSHExitStatus?
    private var exitWaiters: [(Result<SSHExitStatus, SSHError>) -> Void] = []
    private var error: SSHError?
    private var finished = false
    private static let highWater = 1 << 20
    /// The receive window offered for each channel: large enough to keep a fast link busy.
    static let receiveWindow = 8 << 20

    init(raw: OpaquePointer, kind: Kind, label: String) {
        self.raw = raw
        self.kind = kind
        self.label = label
    }

    // MARK: Requests (called on the loop thread by jobs)

    func read(stream: Int, maxLength: Int, loop: SessionLoop, resume: @escaping (ReadResult) -> Void) {
        if !buffers[stream].isEmpty {
            resume(.success(buffers[stream].take(maxLength)))
            return
        }
        if let error {
            resume(.failure(error))
            return
        }
        if remoteEOF || raw == nil {
            resume(.success(nil))
            return
        }
        if readers[stream] != nil {
            resume(.failure(SSHError(.invalidArgument, "two reads at once on one stream of \(label)")))
            return
        }
        readers[stream] = Reader(maxLength: maxLength, resume: resume)
        _ = step(loop)
    }

    /// From now on, passes stream 0's bytes to `receiver` as they are read, what is buffered
    /// first; nil ends it (end of stream), and a failure too.
    func deliver(to receiver: @escaping (ReadResult) -> Void, loop: SessionLoop) {
        self.receiver = receiver
        deliver(0)
        if error == nil, raw != nil { _ = step(loop) }
        if let error { failWaiters(error) }
    }

    func write(_ bytes: Outgoing, stream: Int32, loop: SessionLoop, resume: @escaping (Result<Void, SSHError>) -> Void) {
        if let error {
            resume(.failure(error))
            return
        }
        if raw == nil || wantEOF || closeRequested != nil {
            resume(.failure(SSHError(.closed, "\(label) is closed for writing")))
            return
        }
        if bytes.count == 0 {
            resume(.success(()))
            return
        }
        writes.append(Write(bytes: bytes, offset: 0, stream: stream, resume: resume))
        _ = step(loop)
    }

    /// Sends EOF once every queued write has gone.
    func closeInput(loop: SessionLoop) {
        wantEOF = true
        _ = step(loop)
    }

    func waitForExit(_ resume: @escaping (Result<SSHExitStatus, SSHError>) -> Void) {
        if let exitStatus {
            resume(.success(exitStatus))
        } else if let error {
            resume(.failure(error))
        } else {
            exitWaiters.append(resume)
        }
    }

    /// Closes the channel; pending reads and writes fail with `reason`.
    func close(reason: SSHError, loop: SessionLoop) {
        if closeRequested == nil && !finished {
            closeRequested = reason
            failWaiters(reason, exitToo: true)
        }
        _ = step(loop)
    }

    func resizePTY(columns: Int, rows: Int, loop: SessionLoop) -> SSHError? {
        guard let raw else { return SSHError.closed(label) }
        let rc = libssh2_channel_request_pty_size_ex(raw, Int32(columns), Int32(rows), 0, 0)
        if rc < 0 && rc != LIBSSH2_ERROR_EAGAIN {
            return loop.error(rc, .channelFailed, "resizing the terminal of \(label)")
        }
        return nil
    }

    // MARK: Driving

    func step(_ loop: SessionLoop) -> Bool {
        guard let raw, !finished else { return true }
        if closeRequested != nil {
            return finishClosing(raw, loop)
        }
        if !flushWrites(raw, loop) { return finishIfFailed(loop) }
        if wantEOF && !eofSent && writes.isEmpty {
            let rc = libssh2_channel_send_eof(raw)
            if rc == 0 {
                eofSent = true
            } else if rc != LIBSSH2_ERROR_EAGAIN {
                fail(loop.error(rc, .channelFailed, "closing the input of \(label)"), loop)
                return finishIfFailed(loop)
            }
        }
        if !readStreams(raw, loop) { return finishIfFailed(loop) }
        if remoteEOF && kind == .command {
            // The command closed its output: nothing more will be read, so pending input can
            // never be consumed. Close our side and wait for the exit status.
            if !writes.isEmpty { failWrites(SSHError(.closed, "\(label) exited before reading all of its input")) }
            return collectExit(raw, loop)
        }
        return false
    }

    /// Moves queued writes into libssh2. Returns false after a failure.
    private func flushWrites(_ raw: OpaquePointer, _ loop: SessionLoop) -> Bool {
        while !writes.isEmpty {
            let rc = writes[0].bytes.withUnsafeBytes { buffer in
                libssh2_channel_write_ex(
                    raw, writes[0].stream,
                    buffer.baseAddress!.assumingMemoryBound(to: CChar.self) + writes[0].offset,
                    buffer.count - writes[0].offset)
            }
            if rc == Int(LIBSSH2_ERROR_EAGAIN) || rc == 0 { return true }
            if rc < 0 {
                fail(loop.error(Int32(rc), .channelFailed, "writing to \(label)"), loop)
                return false
            }
            writes[0].offset += rc
            if writes[0].offset == writes[0].bytes.count {
                let done = writes.removeFirst()
                done.resume(.success(()))
            }
        }
        return true
    }

    /// Reads both streams while their buffers have room. Returns false after a failure.
    private func readStreams(_ raw: OpaquePointer, _ loop: SessionLoop) -> Bool {
        let streams: [Int32] = kind == .command ? [0, 1] : [0]
        var paused = false
        for stream in streams {
            let index = Int(stream)
            while buffers[index].count < Self.highWater {
                let rc = libssh2_channel_read_ex(raw, stream, loop.scratch.assumingMemoryBound(to: CChar.self), SessionLoop.scratchSize)
                if rc > 0 {
                    if index == 0, let receiver, buffers[0].isEmpty {
                        // Straight to the receiver: one copy, none through the buffer.
                        receiver(.success(Array(UnsafeRawBufferPointer(start: loop.scratch, count: rc))))
                    } else {
                        buffers[index].append(loop.scratch, rc)
                    }
                    continue
                }
                if rc == Int(LIBSSH2_ERROR_EAGAIN) || rc == 0 { break }
                fail(loop.error(Int32(rc), .channelFailed, "reading from \(label)"), loop)
                return false
            }
            if buffers[index].count >= Self.highWater { paused = true }
            deliver(index)
        }
        if !paused && !remoteEOF && libssh2_channel_eof(raw) == 1 {
            remoteEOF = true
            for index in streams.indices { deliver(index) }
        }
        return true
    }

    private func deliver(_ index: Int) {
        if index == 0, let receiver {
            if !buffers[0].isEmpty { receiver(.success(buffers[0].take(buffers[0].count))) }
            if remoteEOF || raw == nil {
                self.receiver = nil
                receiver(.success(nil))
            }
            return
        }
        guard let reader = readers[index] else { return }
        if !buffers[index].isEmpty {
            readers[index] = nil
            reader.resume(.success(buffers[index].take(reader.maxLength)))
        } else if remoteEOF {
            readers[index] = nil
            reader.resume(.success(nil))
        }
    }

    /// After the command's EOF: close, wait for the server's close, read the exit status.
    private func collectExit(_ raw: OpaquePointer, _ loop: SessionLoop) -> Bool {
        if !closeSent {
            let rc = libssh2_channel_close(raw)
            if rc == LIBSSH2_ERROR_EAGAIN { return false }
            closeSent = true
        }
        let rc = libssh2_channel_wait_closed(raw)
        if rc == LIBSSH2_ERROR_EAGAIN { return false }
        var signal: UnsafeMutablePointer<CChar>?
        var signalLength = 0
        _ = libssh2_channel_get_exit_signal(raw, &signal, &signalLength, nil, nil, nil, nil)
        if let signal, signalLength > 0 {
            exitStatus = .signaled(String(cString: signal))
            free(signal)
        } else {
            exitStatus = .exited(libssh2_channel_get_exit_status(raw))
        }
        let waiters = exitWaiters
        exitWaiters = []
        for waiter in waiters { waiter(.success(exitStatus!)) }
        return release(raw)
    }

    private func finishClosing(_ raw: OpaquePointer, _ loop: SessionLoop) -> Bool {
        if !closeSent {
            let rc = libssh2_channel_close(raw)
            if rc == LIBSSH2_ERROR_EAGAIN { return false }
            closeSent = true
        }
        return release(raw)
    }

    private func release(_ raw: OpaquePointer) -> Bool {
        let rc = libssh2_channel_free(raw)
        if rc == LIBSSH2_ERROR_EAGAIN { return false }
        self.raw = nil
        finished = true
        let reason = error ?? closeRequested ?? SSHError.closed(label)
        failWaiters(reason, exitToo: true)
        return true
    }

    private func finishIfFailed(_ loop: SessionLoop) -> Bool {
        guard let raw, error != nil else { return false }
        if loop.failure != nil {
            // The session is gone; libssh2 frees the channel with the session.
            self.raw = nil
            finished = true
            return true
        }
        closeRequested = error
        return finishClosing(raw, loop)
    }

    private func fail(_ error: SSHError, _ loop: SessionLoop) {
        if self.error == nil { self.error = error }
        failWaiters(error, exitToo: true)
    }

    func fail(_ error: SSHError) {
        if self.error == nil { self.error = error }
        raw = nil
        finished = true
        failWaiters(error, exitToo: true)
    }

    private func failWrites(_ error: SSHError) {
        let pending = writes
        writes = []
        for write in pending { write.resume(.failure(error)) }
    }

    private func failWaiters(_ error: SSHError, exitToo: Bool = false) {
        failWrites(error)
        if let receiver {
            self.receiver = nil
            if !buffers[0].isEmpty { receiver(.success(buffers[0].take(buffers[0].count))) }
            receiver(remoteEOF && error.code == .closed ? .success(nil) : .failure(error))
        }
        for index in readers.indices {
            if let reader = readers[index] {
                readers[index] = nil
                if remoteEOF && buffers[index].isEmpty && error.code == .closed {
                    reader.resume(.success(nil))
                } else {
                    reader.resume(.failure(error))
                }
            }
        }
        if exitToo {
            let waiters = exitWaiters
            exitWaiters = []
            for waiter in waiters { waiter(.failure(error)) }
        }
    }
}
