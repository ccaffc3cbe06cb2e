import Foundation

/// What the agent wrote when it last started (`serve --new-token-file`): where it listens,
/// its token and which start it is. Read over the node's SSH session at every connect, so the
/// client never trusts a stale port; the token never leaves that channel.
struct AgentEndpoint: Decodable, Sendable, Equatable {
    var port: Int
    var token: String
    var instance: String?
    var build: String?

    /// The agent's file inside the container.
    static let containerFile = "/yonder/run/agent.json"
    /// The agent's file in its folder on the node, for agents without a container.
    static let hostFileName = "agent.json"
    /// The agent's activity file inside the container (`serve --activity-file`), which the
    /// autostop watcher reads; with no container, `activity` in the agent's folder.
    static let activityFile = "/yonder/run/activity"
    /// The agent's jobs folder inside the container (`serve --jobs-dir`); with no container,
    /// `jobs` in the agent's folder.
    static let jobsFolder = "/yonder/run/jobs"
    /// The agent's build id inside the container (`serve --build-file`), written with the
    /// agent, so that a new agent can be swapped in without making the container again.
    static let buildFile = "/yonder/build"
    /// Where a new agent build is put before the running agent swaps it in (`yonder.swap`).
    static let stagedAgent = "/yonder/agent.new"

    /// The prefix of the line that carries the file in a node command's output; anything the
    /// node's login files or banners print around it is ignored.
    static let marker = "yonder-endpoint "

    /// The endpoint in the marked line of `text`, or nil when there is none (the agent has not
    /// written its file yet, or the file is unreadable).
    static func parse(_ text: String) -> AgentEndpoint? {
        for line in text.split(separator: "\n") where line.hasPrefix(marker) {
            let json = line.dropFirst(marker.count)
            if let endpoint = try? JSONDecoder().decode(AgentEndpoint.self, from: Data(json.utf8)), !endpoint.token.isEmpty {
                return endpoint
            }
        }
        return nil
    }

    /// The value after `key ` in the first line that starts with it.
    static func field(_ key: String, in text: String) -> String? {
        for line in text.split(separator: "\n") where line.hasPrefix(key + " ") {
            return String(line.dropFirst(key.count + 1)).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }
}
