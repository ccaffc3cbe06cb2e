import ArgumentParser
import Foundation
import YonderCluster

struct SSHConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ssh-config",
        abstract: "Print an OpenSSH config block so that plain `ssh yonder-NAME` lands in the container.",
        discussion: """
            `yonder-NAME` is node 0, `yonder-NAME-I` is node I; a command after the host runs \
            in the container too, and editors that use OpenSSH work the same way. Each node \
            gets a key of its own that can only enter the container. --write puts the block at \
            the top of ~/.ssh/config between marker lines, replacing an older one; \
            `yonder down NAME` takes it out again.

            Examples:
              yonder ssh-config demo >> ~/.ssh/yonder.conf
              yonder ssh-config demo --write && ssh yonder-demo nproc
            """)

    @Argument(help: "The cluster's name.")
    var name: String

    @Flag(help: "Add the block to the config file instead of printing it.")
    var write = false

    @Option(help: "The config file --write edits.")
    var file = SSHConfigFile.defaultPath

    func run() async throws {
        try await reportingErrors {
            let block = try await Cluster.sshConfig(name)
            if write {
                try SSHConfigFile.install(block, cluster: name, at: file)
                print("wrote the block for \(name) to \(file): ssh yonder-\(name) opens a shell in its container")
            } else {
                print(block, terminator: "")
            }
        }
    }
}
