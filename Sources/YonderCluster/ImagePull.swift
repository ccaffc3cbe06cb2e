import Foundation
import YonderSSH

/// Getting the image onto a node. Registry credentials never touch the node's persistent
/// disk: `docker login` and `docker pull` run with `docker --config DIR`, DIR being a private
/// (0700) folder made by `mktemp -d` under `$XDG_RUNTIME_DIR` or `/dev/shm` (memory) when
/// there is one, and removed when the pull ends however it ends: by a `trap` in the same
/// remote shell (even when the SSH session is killed), and by the client afterwards. The
/// user's own `~/.docker/config.json`, and any login in it, is left alone.
extension NodeBootstrap {
    /// The folder name prefix, for finding leftovers.
    static let loginFolderPrefix = "yonder-docker."

    func ensureImage(_ image: String, credentials: RegistryCredentials? = nil) async throws {
        if try await run("docker image inspect --format '{{.Id}}' \(shellQuote(image))").status == .exited(0) { return }
        try await transfer(image, push: false, credentials: credentials)
    }

    /// `docker pull`, or `docker push` of an image the node built, with the layers counted
    /// for the progress bar and the login, if any, in a private folder for this transfer only.
    func transfer(_ image: String, push: Bool, credentials: RegistryCredentials?) async throws {
        let step = push ? "push" : "pull"
        report(ClusterProgress(node: index, step: step, detail: "\(push ? "pushing" : "pulling") \(image)"))
        let start = ContinuousClock.now
        if let credentials, credentials.password.unicodeScalars.contains(where: { $0 == "\n" || $0 == "\r" }) {
            throw ClusterError(.invalidSpec, "\(node): the registry password for \(credentials.username) holds a line break, and a password or token is one line; check YONDER_DOCKER_PASSWORD")
        }
        let server = credentials.map { $0.server ?? RegistryCredentials.registry(of: image) ?? "" }
        let pull = try await session.execute(Self.pullCommand(image, username: credentials?.username, server: server, verb: step))
        var loginFolder: String?
        var loggedIn = false
        do {
            async let errors = pull.stderr.collect()
            if let credentials {
                // The password goes on standard input only, as its first line: never in argv,
                // a log or an error. Standard input then stays open: its end stops the command.
                try await pull.write(Array(credentials.password.utf8) + [UInt8(ascii: "\n")])
            }
            // Without a terminal docker prints a line per layer and state ("abc123: Pulling fs
            // layer", "abc123: Pull complete"): count layers for the bar, pass other lines on.
            var layers = Set<Substring>(), finished = Set<Substring>(), output = LineSplitter()
            for try await chunk in pull.stdout {
                for line in output.lines(in: chunk) {
                    let parts = line.split(separator: ":", maxSplits: 1)
                    if line.hasPrefix("yonder-config ") {
                        loginFolder = String(line.dropFirst("yonder-config ".count))
                    } else if line == "yonder-logged-in" {
                        loggedIn = true
                        report(ClusterProgress(node: index, step: "login", detail: "logged in to \(server?.isEmpty == false ? server! : "Docker Hub") for this \(step) only"))
                    } else if parts.count == 2, parts[0].allSatisfy(\.isHexDigit) {
                        let state = parts[1].trimmingCharacters(in: .whitespaces)
                        layers.insert(parts[0])
                        if ["Pull complete", "Already exists", "Pushed", "Layer already exists"].contains(state) { finished.insert(parts[0]) }
                        report(ClusterProgress(node: index, step: step, detail: "\(image): \(finished.count)/\(layers.count) layers",
                                               fraction: (Int64(finished.count), Int64(layers.count))))
                    } else if !line.isEmpty {
                        report(ClusterProgress(node: index, step: step, detail: String(line)))
                    }
                }
            }
            var errorText = String(decoding: try await errors, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            let status = try await pull.exitStatus()
            await removeLoginFolder(loginFolder)
            loginFolder = nil
            guard status == .exited(0) else {
                if let credentials, !loggedIn {
                    errorText = errorText.replacingOccurrences(of: credentials.password, with: "***")
                    let registry = server?.isEmpty == false ? server! : "Docker Hub"
                    throw ClusterError(.imageUnavailable, "\(node): docker login to \(registry) as \(credentials.username) failed: \(errorText); check YONDER_DOCKER_USERNAME and YONDER_DOCKER_PASSWORD")
                }
                if push {
                    throw ClusterError(.imageUnavailable, "\(node): cannot push \(image): \(errorText); check that the registry is reachable from the node and that the credentials (YONDER_DOCKER_USERNAME, YONDER_DOCKER_PASSWORD) may push there")
                }
                throw ClusterError(.imageUnavailable, "\(node): cannot pull \(image): \(errorText); check the name, and the registry credentials if it is private")
            }
        } catch {
            // Lost, failed or interrupted: the folder goes (the remote trap removes it too).
            await pull.cancel()
            await removeLoginFolder(loginFolder)
            throw error
        }
        report(ClusterProgress(node: index, step: step, detail: "\(push ? "pushed" : "pulled") \(image)", elapsed: ContinuousClock.now - start))
    }

    /// Removes the private docker config folder on the node, even when the task was cancelled.
    func removeLoginFolder(_ folder: String?) async {
        guard let folder, folder.contains("/\(Self.loginFolderPrefix)") else { return }
        await Self.remove("rm -rf \(shellQuote(folder))", over: session, reconnect: reconnect)
    }

    /// One shell command: with a user name, read the password (the first line of standard
    /// input), make the private folder, arrange its removal on every exit, log in with the
    /// password through a pipe, and pull with it; without one, a plain pull. Prints
    /// `yonder-config DIR` and `yonder-logged-in` for the client. `verb` is `pull` or `push`.
    ///
    /// Each docker command runs in the background while a watcher reads the rest of standard
    /// input, which the client never closes: when it ends (`up` cancelled or interrupted, the
    /// client gone, the connection lost), the watcher stops the shell, whose trap stops the
    /// docker command. Without it a stalled pull (a registry that never answers) went on on
    /// the node after a Ctrl-C, since nothing it wrote met the closed channel.
    static func pullCommand(_ image: String, username: String?, server: String?, verb: String = "pull") -> String {
        let quotedImage = shellQuote(image)
        let watched = """
            pid=; watch=
            stop() { [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null; exit "$1"; }
            trap 'stop 129' HUP; trap 'stop 130' INT; trap 'stop 141' PIPE; trap 'stop 143' TERM
            """
        let watcher = """
            exec 3<&0
            (cat <&3 >/dev/null 2>&1; kill -TERM $$) >/dev/null 2>&1 </dev/null & watch=$!
            """
        guard let username else {
            return """
                \(watched)
                trap '[ -z "$watch" ] || kill "$watch" 2>/dev/null' EXIT
                \(watcher)
                docker \(verb) \(quotedImage) </dev/null & pid=$!
                wait "$pid"; exit $?
                """
        }
        return """
            umask 077; dir=
            \(watched)
            IFS= read -r password || { echo "no registry password came on standard input" >&2; exit 1; }
            for base in "${XDG_RUNTIME_DIR:-}" /dev/shm "${TMPDIR:-/tmp}"; do
              if [ -n "$base" ] && [ -d "$base" ] && [ -w "$base" ]; then dir=$(mktemp -d "$base/\(loginFolderPrefix)XXXXXXXX") && break; fi
            done
            [ -n "$dir" ] || { echo "cannot make a private folder for the registry login (mktemp -d)" >&2; exit 1; }
            trap '[ -z "$watch" ] || kill "$watch" 2>/dev/null; rm -rf "$dir"' EXIT
            echo "yonder-config $dir"
            \(watcher)
            printf '%s' "$password" | docker --config "$dir" login --username \(shellQuote(username)) --password-stdin \(shellQuote(server ?? "")) >/dev/null & pid=$!
            password=
            wait "$pid" || exit $?
            echo yonder-logged-in
            docker --config "$dir" \(verb) \(quotedImage) </dev/null & pid=$!
            wait "$pid"; exit $?
            """
    }
}
