import ArgumentParser
import Foundation
import Yonder
import YonderCluster

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a cluster's jobs (each `yonder launch`): state, start, duration and exit status.",
        discussion: """
            A job has the same id on every node. Its state is running while any node runs it, \
            else failed, lost or cancelled if any node's was, else succeeded; EXIT is the \
            status of the lowest-ranked node that failed. A job is lost when the agent that \
            ran it went away before it ended (its container restarted). The last 100 ended \
            jobs are kept.

            Examples:
              yonder jobs train
              yonder jobs train --json
            """)

    @Argument(help: "The cluster's name.")
    var name: String

    @Flag(help: "Print JSON: every job with each node's record.")
    var json = false

    func run() async throws {
        try await reportingErrors {
            let jobs = try await withCluster(name) { try await $0.jobs() }
            if json {
                try printJSON(jobs.map { JobRecord(id: $0.id, state: $0.state, nodes: $0.nodes.sorted { $0.key < $1.key }.map(\.value)) })
                return
            }
            guard !jobs.isEmpty else {
                print("No jobs on \(name) yet; yonder launch starts one.")
                return
            }
            let now = Date().timeIntervalSince1970
            let format = DateFormatter()
            format.dateFormat = "yyyy-MM-dd HH:mm:ss"
            printTable(["JOB", "STATE", "NODES", "STARTED", "DURATION", "EXIT", "COMMAND"], jobs.map { job in
                let exit = job.firstFailure.map { "\($0.job.status.map { String($0.shellStatus) } ?? "-") (node \($0.node))" } ?? (job.state == .running ? "" : "0")
                let command = job.nodes.values.first?.command.last ?? ""
                let line = command.split(separator: "\n").first.map(String.init) ?? ""
                return [
                    String(job.id), job.state.rawValue, String(job.nodes.count),
                    format.string(from: Date(timeIntervalSince1970: job.started)),
                    Self.duration((job.ended ?? now) - job.started), exit,
                    line.count > 40 ? String(line.prefix(39)) + "…" : line,
                ]
            })
        }
    }

    /// `42s`, `3m 05s`, `2h 10m`.
    static func duration(_ seconds: Double) -> String {
        let total = max(0, Int(seconds.rounded()))
        if total < 60 { return "\(total)s" }
        if total < 3600 { return String(format: "%dm %02ds", total / 60, total % 60) }
        return String(format: "%dh %02dm", total / 3600, (total % 3600) / 60)
    }
}

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Stop a job on every node of a cluster.",
        discussion: """
            Sends SIGTERM to the job's processes on every node, and SIGKILL 2 seconds later to \
            what still runs; returns once it has ended everywhere. A job that ended already is \
            left as it is.

            Examples:
              yonder cancel train 3
            """)

    @Argument(help: "The cluster's name.")
    var name: String

    @Argument(help: "The job's id (yonder jobs NAME lists them).")
    var job: Int

    func run() async throws {
        try await reportingErrors {
            let id = self.job
            try await withCluster(name) { cluster in
                guard let before = try await cluster.jobs().first(where: { $0.id == id }) else {
                    throw ClusterError(.unknownJob, "\(name) has no job \(id); yonder jobs \(name) lists its jobs")
                }
                guard before.state == .running else {
                    print("Job \(id) of \(name) had ended already (\(before.state.rawValue)).")
                    return
                }
                let job = try await cluster.cancelJob(id)
                let stopped = job.nodes.filter { before.nodes[$0.key]?.state == .running && $0.value.state == .cancelled }.keys.sorted()
                print("Job \(id) of \(name) was stopped on node\(stopped.count == 1 ? "" : "s") \(stopped.map(String.init).joined(separator: ", ")).")
            }
        }
    }
}

/// A job as `yonder jobs --json` prints it.
private struct JobRecord: Encodable {
    var id: Int
    var state: JobInfo.State
    var nodes: [JobInfo]
}
