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
            ("stale uploads", NodeCommands.staleUploadsRemoval(in: name, contexts: true)),
        ]
        for (builder, command) in commands {
            var script = "cd \(shellQuote(folder.path)) && docker() { cat >/dev/null 2>&1 || true; }; tar() { :; }\n" + command
            if builder.hasPrefix("pull") {
                // The pull reads a password line, and stops when standard input ends: it
                // stays open (a second) for the whole command to run.
                script = "(printf 'password\\n'; sleep 1) | sh -c \(shellQuote(script))"
            }
            let (status, output) = try ChildProcess.runCapturing("/bin/sh", ["-c", script])
            #expect(!FileManager.default.fileExists(atPath: canary), "\(builder) ran what the name \(name.debugDescription) says (status \(status)): \(output)")
            try? FileManager.default.removeItem(atPath: canary)
            if builder.hasPrefix("pull") {
                // It ran to its end, the name in every place it goes, and succeeded.
                #expect(status == 0, "\(builder) with \(name.debugDescription): \(output)")
            }
        }
    }

    @Test func quotedWordsComeBackUnchanged() throws {
        for word in Self.hostile + ["", "plain", "it's", "a b", "ünïcödé"] {
            let (_, output) = try ChildProcess.runCapturing("/bin/sh", ["-c", "printf '%s' \(shellQuote(word))"])
            #expect(output == word)
        }
    }
}

/// The command that removes what lost uploads left in a folder, run by a real `sh` and `find`.
@Suite struct StaleUploadsTests {
    @Test(arguments: [false, true]) func onlyOldLeftoversOfUploadsGo(contexts: Bool) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("yonder-stale-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("sub"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let old = Date().addingTimeInterval(-Double(NodeCommands.staleUploadMinutes + 5) * 60)
        // name: (made an hour and more ago, removed)
        let files: [String: (old: Bool, removed: Bool)] = [
            ".agent.yonder-12.tmp": (true, true),
            ".agent.yonder-13.tmp": (false, false),
            "ctx-0.tar": (true, contexts),
            "ctx-1.tar": (false, false),
            "agent-build": (true, false),
            ".hidden": (true, false),
            "sub/.deeper.yonder-1.tmp": (true, false),
        ]
        for (name, file) in files {
            let path = folder.appendingPathComponent(name).path
            #expect(FileManager.default.createFile(atPath: path, contents: Data("x".utf8)))
            if file.old { try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: path) }
        }
        let (status, output) = try ChildProcess.runCapturing("/bin/sh", ["-c", NodeCommands.staleUploadsRemoval(in: folder.path, contexts: contexts)])
        #expect(status == 0, "\(output)")
        for (name, file) in files {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(name).path) == !file.removed, "\(name)")
        }
        // A folder that is not there yet is no failure.
        let (missing, _) = try ChildProcess.runCapturing("/bin/sh", ["-c", NodeCommands.staleUploadsRemoval(in: folder.appendingPathComponent("none").path)])
        #expect(missing == 0)
    }
}
