import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Puts a terminal in raw mode and puts it back: on ``restore()``, and on SIGTERM, SIGHUP
/// or SIGQUIT before the process dies of them.
final class RawTerminal: @unchecked Sendable {
    // Safe: `saved` is written once in init; `restored` and the sources are behind `lock`.
    private let fd: Int32
    private var saved = termios()
    private let lock = NSLock()
    private var restored = false
    private var sources: [any DispatchSourceSignal] = []

    /// Switches `fd` to raw mode; nil when `fd` is not a terminal.
    init?(fd: Int32) {
        guard isatty(fd) == 1, tcgetattr(fd, &saved) == 0 else { return nil }
        self.fd = fd
        var raw = saved
        cfmakeraw(&raw)
        guard tcsetattr(fd, TCSADRAIN, &raw) == 0 else { return nil }
        for signalNumber in [SIGTERM, SIGHUP, SIGQUIT] {
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { [self] in
                restore()
                signal(signalNumber, SIG_DFL)
                raise(signalNumber)
            }
            signal(signalNumber, SIG_IGN)
            source.resume()
            sources.append(source)
        }
    }

    /// Puts back the saved mode. Safe to call more than once.
    func restore() {
        let first = lock.withLock {
            defer { restored = true }
            return !restored
        }
        guard first else { return }
        var saved = saved
        _ = tcsetattr(fd, TCSADRAIN, &saved)
        for source in sources { source.cancel() }
        for signalNumber in [SIGTERM, SIGHUP, SIGQUIT] { signal(signalNumber, SIG_DFL) }
    }

    deinit { restore() }

    /// The terminal's size in (columns, rows), if `fd` is a terminal.
    static func size(of fd: Int32) -> (columns: Int, rows: Int)? {
        var size = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0, size.ws_row > 0 else { return nil }
        return (Int(size.ws_col), Int(size.ws_row))
    }
}
