internal import CLibSSH2
public import Foundation
import Synchronization

/// What `writeWithoutWaiting` queued and the session's thread has not taken yet.
final class SharedOutgoing: Sendable {
    struct State {
        /// Bytes not yet taken by the loop, in order.
        var pending: [UInt8] = []
        /// Whether a loop job that takes `pending` is on its way.
        var scheduled = false
        /// Bytes queued and not yet written into libssh2.
        var queued = 0
    }
    private let state = Mutex(State())
    func withLock<R>(_ body: (inout State) -> R) -> R { state.withLock { body(&$0) } }
}

/// A TCP connection made by the server to a host and port on its side (a direct-tcpip
/// channel), used as a two-way byte stream: what `ssh -L` forwards, without a local socket.
///
/// One task may read while another writes. Cancelling a task blocked in ``read(maxLength:)``
/// or ``write(_:)`` closes the tunnel.
public final class SSHTunnel: Sendable {
    let core: ChannelCore
    /// The session the tunnel runs on (kept alive while the tunnel is).
    public let session: SSHSession
    /// The host the server connected to, as the server resolves it.
    public let host: String
    /// The port the server connected to.
    public let port: Int

    init(core: ChannelCore, session: SSHSession, host: String, port: Int) {
        self.core = core
        self.session = session
        self.host = host
        self.port = port
    }

    deinit {
        let core = core
        session.onLoop { loop in core.close(reason: SSHError.closed(core.label), loop: loop) }
    }

    /// Waits for bytes and returns at most `maxLength` of them; nil once the far side has
    /// closed and every byte has been read.
    public func read(maxLength: Int) async throws -> [UInt8]? {
        let core = core
        return try await session.withChannelCancellation(core) {
            try await session.onLoop { loop, resume in
                core.read(stream: 0, maxLength: maxLength, loop: loop, resume: resume)
            }
        }
    }

    /// Writes all of `bytes`, returning once libssh2 has taken them.
    public func write(_ bytes: [UInt8]) async throws {
        let core = core
        try await session.withChannelCancellation(core) {
            try await session.onLoop { loop, resume in core.write(.bytes(bytes), stream: 0, loop: loop, resume: resume) }
        }
    }

    /// Writes all of `data` from where it is held (no copy), returning once libssh2 has
    /// taken it: for large pieces such as a call's binary attachment.
    public func write(_ data: Data) async throws {
        let core = core
        try await session.withChannelCancellation(core) {
            try await session.onLoop { loop, resume in core.write(.data(data), stream: 0, loop: loop, resume: resume) }
        }
    }

    /// From now on, passes the bytes that arrive to `receiver` on the session's thread as they
    /// are read (so it must return quickly), in order, ending with nil (end of stream) or a
    /// failure; ``read(maxLength:)`` must not be called after.
    public func deliver(to receiver: @escaping @Sendable (Result<[UInt8]?, SSHError>) -> Void) {
        let core = core
        session.onLoop { loop in core.deliver(to: receiver, loop: loop) }
    }

    /// Queues `bytes` behind earlier writes without waiting, unless more than
    /// ``queueLimit`` bytes already wait (then returns false and takes nothing: use
    /// ``write(_:)``, which waits), or when `bytes` is ``largePiece`` or more. Bytes queued while the session's thread is busy go to
    /// libssh2 together, in one write. A failure shows on the reading side.
    public func writeWithoutWaiting(_ bytes: [UInt8]) -> Bool {
        let schedule = outgoing.withLock { outgoing -> Bool? in
            // Large pieces take the waiting path: written from their own arrays, with backpressure.
            guard outgoing.queued < Self.queueLimit, bytes.count < Self.largePiece else { return nil }
            outgoing.queued += bytes.count
            outgoing.pending.append(contentsOf: bytes)
            defer { outgoing.scheduled = true }
            return !outgoing.scheduled
        }
        guard let schedule else { return false }
        if schedule {
            let core = core
            let outgoing = outgoing
            session.onLoop { loop in
                let batch = outgoing.withLock { outgoing in
                    outgoing.scheduled = false
                    defer { outgoing.pending = [] }
                    return outgoing.pending
                }
                core.write(.bytes(batch), stream: 0, loop: loop) { _ in outgoing.withLock { $0.queued -= batch.count } }
            }
        }
        return true
    }

    /// Bytes queued by ``writeWithoutWaiting(_:)`` beyond which it declines.
    public static let queueLimit = 4 << 20
    /// Pieces from this size on are declined by ``writeWithoutWaiting(_:)``.
    public static let largePiece = 256 << 10
    private let outgoing = SharedOutgoing()

    /// The session's thread as a task executor: a task that prefers it
    /// (`withTaskExecutorPreference`) runs between the session's rounds of I/O, so what it
    /// writes goes into libssh2 and what is delivered to it resumes it without a thread hop.
    /// While such a task runs, the session does no I/O, for any of its channels: only for
    /// short work between requests.
    public var sessionExecutor: any TaskExecutor { session.loop }

    /// True on the session's thread (for tests of ``sessionExecutor``).
    package var isOnSessionThread: Bool { session.loop.isCurrent }

    /// Sends end-of-file: the far side reads EOF, and can still answer.
    public func closeWrite() async {
        let core = core
        session.onLoop { loop in core.closeInput(loop: loop) }
    }

    /// Closes both directions. A pending read returns nil or throws. Safe to call twice.
    public func close() async {
        let core = core
        session.onLoop { loop in core.close(reason: SSHError.closed(core.label), loop: loop) }
    }
}

extension SSHSession {
    /// Asks the server to open a TCP connection to `host`:`port` (resolved on the server's
    /// side, so "127.0.0.1" is the server's own loopback).
    public func openTunnel(host: String, port: Int) async throws -> SSHTunnel {
        guard (1...65535).contains(port) else {
            throw SSHError(.invalidArgument, "tunnel port \(port) is not between 1 and 65535")
        }
        requestInteractiveModeOnce()
        let label = "tunnel to \(host):\(port) via \(configuration.destination)"
        let core = try await openChannel(kind: .tunnel, label: label, open: { loop in
            host.withCString { pointer in
                libssh2_channel_direct_tcpip_ex(loop.raw, pointer, Int32(port), "127.0.0.1", 22)
            }
        }, setup: [{ raw in
            // Widen the window past libssh2's 2 MiB default so bulk transfers keep flowing.
            var window: UInt32 = 0
            let rc = libssh2_channel_receive_window_adjust2(raw, UInt(ChannelCore.receiveWindow), 1, &window)
            return rc == LIBSSH2_ERROR_EAGAIN ? rc : 0
        }])
        return SSHTunnel(core: core, session: self, host: host, port: port)
    }
}
