import Foundation
import YonderLocalServers

/// A container of a Yonder cluster on this machine's Docker that no cluster recorded in this
/// home (`YONDER_HOME`) accounts for: left by a home that was removed, a run killed before it
/// could take its cluster down, or a cluster of another home.
package struct StrayContainer: Sendable, Equatable {
    /// The container's name, e.g. `yonder-demo-0`.
    package var container: String
    /// The cluster it was made for (its `yonder.cluster` label).
    package var cluster: String

    /// Those on this machine's Docker, by their `yonder.cluster` label; none when Docker is not
    /// here or does not answer within 5 s.
    package static func onThisMachine() -> [StrayContainer] {
        let timeout = "/usr/bin/timeout"
        guard FileManager.default.isExecutableFile(atPath: timeout),
            let (status, output) = try? ChildProcess.runCapturing(
                timeout, ["5", "docker", "ps", "-a", "--filter", "label=yonder.cluster", "--format", "{{.Names}}\t{{.Label \"yonder.cluster\"}}"]),
            status == 0
        else { return [] }
        let known = Set(ClusterState.knownNames())
        return output.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 2, !fields[1].isEmpty, !known.contains(fields[1]) else { return nil }
            return StrayContainer(container: fields[0], cluster: fields[1])
        }.sorted { $0.container < $1.container }
    }

    /// What to tell a user about `strays`: that they may belong to another home, and how to
    /// remove them; nil when there are none.
    package static func advice(_ strays: [StrayContainer]) -> String? {
        guard !strays.isEmpty else { return nil }
        let one = strays.count == 1
        let list = strays.map { "\($0.container) (cluster \($0.cluster))" }.joined(separator: ", ")
        return "this machine's Docker holds \(one ? "a container of a Yonder cluster" : "containers of Yonder clusters") that this home "
            + "(YONDER_HOME) does not record: \(list). \(one ? "It" : "They") may belong to another YONDER_HOME; if not, remove "
            + "\(one ? "it" : "them") with `docker rm -f \(strays.map(\.container).joined(separator: " "))`"
    }
}
