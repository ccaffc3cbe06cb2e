import Foundation
import Testing
@testable import YonderCluster
import YonderLocalServers

/// Every command builder that puts a name, path or image into a node's shell, run by a real
/// `sh` with names full of shell metacharacters: nothing but the command itself runs. (`docker`
/// and `tar` are shell functions that do nothing here, a stand-in at the one seam no test can
/// reach: the node's Docker.) Cluster names are checked before they get this far; this is the
/// second line.
@Suite struct ShellQuotingTests {
    static let hostile = [
        "x'; touch CANARY; '", "x\"; touch CANARY; \"", "$(touch CANARY)", "`touch CANARY`", "x; touch CANARY",
        "x && touch CANARY", "x | touch CANARY", "x\ntouch CANARY", "-rf CANARY",
    ]

    @Test(arguments: hostile) func noBuilderRunsWhatANameSays(_ template: String) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-quoting-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let canary = folder.appendingPathComponent("canary").path
        let name = template.replacingOccurrences(of: "CANARY", with: canary)
        var commands: [(String, String)] = []
        for onHost in [false, true] {
            commands += [
                ("removal", NodeCommands.removal(name, onHost: onHost)),
                ("endpoint", NodeCommands.endpoint(name, onHost: onHost)),
                ("discovery", NodeCommands.discovery(name, onHost: onHost)),
                ("state", NodeCommands.state(name, onHost: onHost)),
                ("logs", NodeCommands.logs(name, onHost: onHost, follow: false, tail: 5)),
            ]
        }
        commands += [
            ("pull", NodeBootstrap.pullCommand(name, username: nil, server: nil)),
            ("pull with login", NodeBootstrap.pullCommand(name, username: name, server: name)),
        ]
        for (builder, command) in commands {
            let script = "docker() { cat >/dev/null 2>&1 || true; }; tar() { :; }\n" + command
            let (status, output) = try ChildProcess.runCapturing("/bin/sh", ["-c", "cd \(shellQuote(folder.path)) && " + script])
            #expect(!FileManager.default.fileExists(atPath: canary), "\(builder) ran what the name \(name.debugDescription) says (status \(status)): \(output)")
            try? FileManager.default.removeItem(atPath: canary)
        }
    }

    @Test func quotedWordsComeBackUnchanged() throws {
        for word in Self.hostile + ["", "plain", "it's", "a b", "ünïcödé"] {
            let (_, output) = try ChildProcess.runCapturing("/bin/sh", ["-c", "printf '%s' \(shellQuote(word))"])
            #expect(output == word)
        }
    }
}
