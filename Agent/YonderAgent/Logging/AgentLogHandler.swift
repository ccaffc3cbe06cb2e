#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
public import Logging
import Synchronization
import YonderProtocol

/// The agent's swift-log handler: every line goes to the agent's own log; a line written while
/// a request runs also goes back to the client that made the request, as a `log` message.
public struct AgentLogHandler: LogHandler {
    /// Where the agent's own log lines go: standard error, or the `--log-file`.
    static let sink = Mutex<Int32>(2)

    private let label: String
    /// The handler's metadata.
    public var metadata: Logger.Metadata = [:]
    /// The least severe level that is written.
    public var logLevel: Logger.Level = .info

    /// Makes a handler for the logger labelled `label`.
    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = self.metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let text = "\(event.message)"
        if let request = RequestContext.current {
            request.emit(.log(Message.Log(
                id: request.id, level: event.level.rawValue, message: text, source: label,
                metadata: merged.isEmpty ? nil : merged.mapValues { "\($0)" })))
        }
        let rendered = merged.isEmpty ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let request = RequestContext.current.map { " [request \($0.id)]" } ?? ""
        let line = "\(Self.timestamp()) \(event.level.rawValue) \(label):\(request) \(text)\(rendered)\n"
        Self.writeToSink(line)
    }

    /// Writes `text` to the agent's own log as it is.
    static func writeToSink(_ text: String) {
        sink.withLock { fd in
            writeAll(fd, Array(text.utf8))
        }
    }

    private static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var time = now.tv_sec
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int = 2) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        let date = [pad(parts.tm_year + 1900, 4), pad(parts.tm_mon + 1), pad(parts.tm_mday)].joined(separator: "-")
        let clock = [pad(parts.tm_hour), pad(parts.tm_min), pad(parts.tm_sec)].joined(separator: ":")
        return date + "T" + clock + "Z"
    }

    private static let bootstrapped = Mutex(false)

    /// Installs this handler as the process's swift-log backend, once; later calls do nothing.
    static func bootstrapOnce() {
        let first = bootstrapped.withLock { done in
            defer { done = true }
            return !done
        }
        if first {
            LoggingSystem.bootstrap { AgentLogHandler(label: $0) }
        }
    }
}

/// Writes every byte to `fd`, retrying short writes; errors drop the rest (a log must never
/// stop the agent).
func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 {
            if errno == EINTR { continue }
            return
        }
        offset += written
    }
}
