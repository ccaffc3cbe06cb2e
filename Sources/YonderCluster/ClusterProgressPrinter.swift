public import Foundation
import Synchronization

/// Prints ``ClusterProgress`` for people. On a terminal, events that carry a fraction (upload
/// bytes, pulled layers) redraw one line as a bar, and other events print above it; elsewhere
/// (a pipe, a log file) those frequent events are skipped and every other event is one line.
///
/// ```swift
/// let printer = ClusterProgressPrinter(terminal: isatty(1) == 1)
/// let cluster = try await Cluster.up(spec) { printer.print($0) }
/// ```
public final class ClusterProgressPrinter: Sendable {
    private let terminal: Bool
    private let write: @Sendable (String) -> Void
    /// Whether a bar is on screen (its line not yet ended).
    private let barShown = Mutex(false)

    /// A printer writing with `write` (standard output by default).
    public init(terminal: Bool, write: @escaping @Sendable (String) -> Void = { FileHandle.standardOutput.write(Data($0.utf8)) }) {
        self.terminal = terminal
        self.write = write
    }

    /// Prints `event`.
    public func print(_ event: ClusterProgress) {
        barShown.withLock { shown in
            if let fraction = event.fraction {
                guard terminal else { return }
                let prefix = event.node.map { "[node \($0)] " } ?? ""
                write("\r\u{1B}[K\(prefix)\(event.step) \(Self.bar(fraction.done, of: fraction.total)) \(event.detail)")
                shown = true
                return
            }
            write((shown ? "\r\u{1B}[K" : "") + event.description + "\n")
            shown = false
        }
    }

    /// Ends a bar left on screen (after a failure, say).
    public func finish() {
        barShown.withLock { shown in
            if shown { write("\n") }
            shown = false
        }
    }

    /// `[#########...........]  45%`
    static func bar(_ done: Int64, of total: Int64, width: Int = 24) -> String {
        let share = total > 0 ? min(1, max(0, Double(done) / Double(total))) : 0
        let filled = Int((share * Double(width)).rounded(.down))
        let percent = String(Int((share * 100).rounded(.down)))
        return "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
            + String(repeating: " ", count: 3 - percent.count) + percent + "%"
    }
}
