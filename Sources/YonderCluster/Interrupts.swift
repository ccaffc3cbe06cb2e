import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Ctrl-C (SIGINT) and SIGTERM while an operation runs: the first cancels it, so that it
/// undoes what it made as a failure would; a second one quits at once. For the command-line
/// tools (`yonder`, `yonder-bench`).
package final class Interrupts: @unchecked Sendable {
    // Safe: `sources` is set in init and only read after; `count` is behind `lock`.
    private var sources: [any DispatchSourceSignal] = []
    private let lock = NSLock()
    private var count = 0
    /// The signal that came first, if any.
    private var received: Int32?

    /// Calls `cancel` on the first SIGINT or SIGTERM, with `message` on standard error after
    /// the name of the `program`.
    package init(program: String = "yonder", message: String, cancel: @escaping @Sendable () -> Void) {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in
                let first = lock.withLock {
                    count += 1
                    if received == nil { received = number }
                    return count == 1
                }
                guard first else {
                    printError("\(program): interrupted again; quitting without cleaning up")
                    _exit(128 + number)
                }
                printError("\(program): \(message) (interrupt again to quit at once)")
                cancel()
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Whether a signal came.
    package var interrupted: Bool { lock.withLock { received != nil } }

    /// The exit status for the signal that came (130 for SIGINT, 143 for SIGTERM).
    package var exitStatus: Int32 { lock.withLock { 128 + (received ?? SIGINT) } }

    /// Restores the default handling.
    package func remove() {
        for source in sources { source.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}

/// Writes `text` and a newline to standard error, for the command-line tools.
package func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
