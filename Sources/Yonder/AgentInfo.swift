public import YonderProtocol

/// What `Connection.info()` reports about a running agent.
public struct AgentInfo: Sendable, Hashable, Codable {
    /// The agent software's name, e.g. `yonder-agent`.
    public var name: String
    /// Its version.
    public var version: String
    /// An identifier of the exact build.
    public var build: String?
    /// The protocol version it speaks.
    public var protocolVersion: Int
    /// The agent's process id.
    public var pid: Int
    /// The host (or container) name it runs on.
    public var hostname: String?
    /// Its operating system.
    public var os: String?
    /// Seconds since it started.
    public var uptime: Double
    /// Every registered function, built-ins included, sorted.
    public var functions: [String]
    /// Every registered remote object type, sorted.
    public var objectTypes: [String]
    /// Every live object.
    public var objects: [ObjectReference]

    enum CodingKeys: String, CodingKey {
        case name, version, build, protocolVersion = "protocol", pid, hostname, os, uptime, functions, objectTypes, objects
    }
}
