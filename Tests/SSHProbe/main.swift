// A process that connects once and exits as soon as it has an answer, as the `yonder` CLI
// does after printing an error. The SSH tests run it many times against a listener that
// never speaks SSH: whatever the session's thread still does must not crash the exit.
//
//     yonder-ssh-probe HOST PORT CONNECT-TIMEOUT-MS
//
// Prints the error's code (or "connected") on standard output; exits 1 on an error, 0 when
// it connected (after closing the session).
import Foundation
import YonderSSH

let arguments = CommandLine.arguments
guard arguments.count == 4, let port = Int(arguments[2]), let milliseconds = Int(arguments[3]) else {
    FileHandle.standardError.write(Data("usage: yonder-ssh-probe HOST PORT CONNECT-TIMEOUT-MS\n".utf8))
    exit(2)
}
let configuration = SSHConfiguration(
    host: arguments[1], port: port, user: "probe", authentication: [.password("probe")],
    hostKeys: .pinned(["SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]),
    connectTimeout: .milliseconds(milliseconds), requestInteractiveMode: false)
do {
    let session = try await SSHSession.connect(configuration)
    print("connected")
    await session.close()
    exit(0)
} catch let error as SSHError {
    print(error.code)
    FileHandle.standardError.write(Data("yonder-ssh-probe: \(error)\n".utf8))
    exit(1)
}
