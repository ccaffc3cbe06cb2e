import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a proxy command, as OpenSSH's `ProxyCommand` does, and hands the SSH session one
/// end of a socket pair whose other end is the command's standard input and output: the
/// way through a jump host (`ssh -W %h:%p jump`), a bastion or a cloud's session manager.
enum ProxyCommandConnector {
    /// `command` with OpenSSH's tokens replaced, each value shell-quoted: `%h` the host,
    /// `%p` the port, `%r` the user, `%%` a percent sign.
    static func expand(_ command: String, host: String, port: Int, user: String) -> String {
        var out = ""
        var characters = command.makeIterator()
        while let character = characters.next() {
            guard character == "%" else {
                out.append(character)
                continue
            }
            switch characters.next() {
            case "h": out += quote(host)
            case "p": out += String(port)
            case "r": out += quote(user)
            case "%": out += "%"
            case let other?: out += "%" + String(other)
            case nil: out += "%"
            }
        }
        return out
    }

    private static func quote(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Starts `/bin/sh -c "exec command"` (tokens expanded) and returns the session's end of the
    /// socket pair, non-blocking, and the command's pid.
    static func connect(command: String, host: String, port: Int, user: String) throws -> (socket: Int32, pid: pid_t) {
        let expanded = expand(command, host: host, port: port, user: user)
        var pair: [Int32] = [0, 0]
        #if canImport(Glibc)
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        #else
        let type = SOCK_STREAM
        #endif
        guard socketpair(AF_UNIX, type, 0, &pair) == 0 else {
            throw SSHError(.unreachable, "cannot make a socket pair for the proxy command: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pair[1], 0)
        posix_spawn_file_actions_adddup2(&actions, pair[1], 1)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        // As OpenSSH does: `exec`, so the command is the process that is ended with the session.
        let arguments = ["sh", "-c", "exec " + expanded]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let rc = posix_spawn(&pid, "/bin/sh", &actions, &attributes, &argv, environ)
        close(pair[1])
        guard rc == 0 else {
            close(pair[0])
            throw SSHError(.unreachable, "cannot start the proxy command `\(expanded)`: \(String(cString: strerror(rc)))")
        }
        _ = fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK)
        return (pair[0], pid)
    }

    /// Ends a proxy command once its session is done, and waits for it on a thread of its
    /// own, so that it never lingers as a zombie.
    static func finish(_ pid: pid_t) {
        kill(pid, SIGTERM)
        let thread = Thread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        thread.stackSize = 64 << 10
        thread.start()
    }
}
