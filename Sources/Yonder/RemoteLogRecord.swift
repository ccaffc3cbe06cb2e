public import Logging

/// A log line that remote code wrote through swift-log while one of this client's calls ran.
///
/// Every line of a call reaches its handler before the call returns.
public struct RemoteLogRecord: Sendable, Hashable {
    /// The line's level.
    public var level: Logger.Level
    /// The text.
    public var message: String
    /// The remote logger's label or source, if the agent sent one.
    public var source: String?
    /// The line's metadata, rendered as strings.
    public var metadata: [String: String]
    /// What the call was, e.g. `call LogLines`.
    public var operation: String

    /// Makes a record; used by tests and custom handlers.
    public init(level: Logger.Level, message: String, source: String? = nil, metadata: [String: String] = [:], operation: String) {
        self.level = level
        self.message = message
        self.source = source
        self.metadata = metadata
        self.operation = operation
    }

    /// Writes this line to `logger`, with the remote source and the call in the metadata.
    public func forward(to logger: Logger) {
        var merged: Logger.Metadata = metadata.mapValues { .string($0) }
        merged["yonder.call"] = .string(operation)
        logger.log(level: level, "\(message)", metadata: merged, source: source ?? "remote")
    }
}
