/// What an agent says about itself in its `hello`.
public struct AgentIdentity: Sendable, Hashable, CustomStringConvertible {
    /// The agent software's name, e.g. `yonder-agent`.
    public var name: String
    /// Its version, e.g. `0.1.0`.
    public var version: String
    /// An identifier of the exact build, if the agent sent one.
    public var build: String?
    /// The protocol version it speaks.
    public var protocolVersion: Int
    /// The largest frame payload it accepts; the client never sends a larger one.
    public var maximumFrameLength: Int
    /// Names this start of the agent process: another value means the agent restarted, and
    /// every object it held is gone.
    public var instance: String?
    /// Whether it accepts binary attachments: then `Data` in arguments travels as raw bytes
    /// after the message rather than as base64 inside it.
    public var acceptsAttachments: Bool

    /// Makes an identity.
    public init(
        name: String, version: String, build: String?, protocolVersion: Int, maximumFrameLength: Int, instance: String? = nil,
        acceptsAttachments: Bool = false
    ) {
        self.instance = instance
        self.acceptsAttachments = acceptsAttachments
        self.name = name
        self.version = version
        self.build = build
        self.protocolVersion = protocolVersion
        self.maximumFrameLength = maximumFrameLength
    }

    /// Name, version and build, e.g. `yonder-agent 0.1.0 (build abc)`.
    public var description: String {
        "\(name) \(version)" + (build.map { " (build \($0))" } ?? "")
    }
}
