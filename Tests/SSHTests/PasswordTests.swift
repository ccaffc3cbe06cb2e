import Foundation
import Testing
import TestSupport
import YonderLocalServers
import YonderSSH

#if canImport(Glibc)
import Glibc
#endif

/// Password authentication needs a local account with a password. The test makes a throwaway
/// one, which it does only as root on CI machines (or when YONDER_TEST_CREATE_USERS=1).
@Suite(.serialized, .enabled(if: SSHServerFixture.shouldRun))
struct PasswordTests {
    static let user = "yonder-pw-test"
    static let password = "s3cret-for-a-throwaway-account"

    static var mayCreateUsers: Bool {
        getuid() == 0 && (runningUnderCI || ProcessInfo.processInfo.environment["YONDER_TEST_CREATE_USERS"] == "1")
    }

    @Test func passwordAuthenticationWorksAndAWrongOneIsRefused() async throws {
        guard Self.mayCreateUsers else {
            print("password test skipped: it creates a local account; run as root with YONDER_TEST_CREATE_USERS=1")
            return
        }
        if getpwnam(Self.user) == nil {
            // The password reaches the hashing program through its environment, not argv.
            let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
            let hash = try ChildProcess.run("/usr/bin/env", ["python3", "-W", "ignore", "-c",
                "import crypt, os; print(crypt.crypt(os.environ['YONDER_PW'], crypt.mksalt(crypt.METHOD_SHA512)))"],
                environment: ["YONDER_PW": Self.password, "PATH": path]).trimmingCharacters(in: .whitespacesAndNewlines)
            try ChildProcess.run("/usr/sbin/useradd", ["-M", "-d", "/tmp", "-s", "/bin/sh", "-p", hash, Self.user])
        }
        let server = try SSHServerFixture(extraConfiguration: ["PasswordAuthentication yes"])
        var config = configuration(server, authentication: [.password(Self.password)])
        config.user = Self.user
        let session = try await SSHSession.connect(config)
        #expect(try await session.run("id -un").stdoutText == "\(Self.user)\n")
        await session.close()

        config.authentication = [.password("not-the-password")]
        let error = await #expect(throws: SSHError.self) { _ = try await SSHSession.connect(config) }
        #expect(error?.code == .authenticationFailed)
        #expect(error?.description.contains("password: refused by the server") == true)
        #expect(error?.description.contains("not-the-password") == false)
    }
}
