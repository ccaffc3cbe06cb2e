import YonderAWS
/// Credentials for a private registry, read from the environment and never written to disk
/// by Yonder. Their description never shows the password.
public struct RegistryCredentials: Sendable, CustomStringConvertible {
    /// The user name.
    public var username: String
    /// The password or token.
    public var password: String
    /// The registry's host (and port); nil means the image's own registry.
    public var server: String?

    /// Makes credentials.
    public init(username: String, password: String, server: String? = nil) {
        self.username = username
        self.password = password
        self.server = server
    }

    /// `YONDER_DOCKER_USERNAME`, `YONDER_DOCKER_PASSWORD` and `YONDER_DOCKER_SERVER`, or
    /// SkyPilot's `SKYPILOT_DOCKER_*` names, so an existing setup works unchanged. Nil when
    /// no user name and password are set; an error when only one of them is.
    public static func fromEnvironment(_ environment: [String: String]) throws -> RegistryCredentials? {
        func value(_ suffix: String) -> String? {
            environment["YONDER_DOCKER_\(suffix)"] ?? environment["SKYPILOT_DOCKER_\(suffix)"]
        }
        let username = value("USERNAME"), password = value("PASSWORD")
        switch (username, password) {
        case (nil, nil):
            return nil
        case (let username?, let password?):
            return RegistryCredentials(username: username, password: password, server: value("SERVER"))
        case (nil, _):
            throw ClusterError(.invalidSpec, "YONDER_DOCKER_PASSWORD is set but YONDER_DOCKER_USERNAME is not; set both (or neither)")
        case (_, nil):
            throw ClusterError(.invalidSpec, "YONDER_DOCKER_USERNAME is set but YONDER_DOCKER_PASSWORD is not; set both (or neither)")
        }
    }

    /// The credentials to pull `image` with: those of the environment (`fromEnvironment`);
    /// else, for an image in Amazon ECR (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/…`), a login
    /// token fetched with the user's AWS credentials (found as the AWS CLI finds them), fresh
    /// at every `up`; else none.
    public static func resolve(image: String?, environment: [String: String]) async throws -> RegistryCredentials? {
        if let given = try fromEnvironment(environment) { return given }
        guard let image, let host = registry(of: image), let (account, region) = ECR.registry(host) else { return nil }
        do {
            let ecr = try AWSConfiguration(environment: environment).client("ecr", region: region, ECR.init)
            let token = try await ecr.loginToken(account: account)
            return RegistryCredentials(username: token.username, password: token.password, server: host)
        } catch {
            throw ClusterError(
                .imageUnavailable,
                "the image \(image) is in Amazon ECR, and getting a login token for it failed: \(error.code): \(error.message); check your AWS credentials (they need ecr:GetAuthorizationToken), or set YONDER_DOCKER_USERNAME and YONDER_DOCKER_PASSWORD")
        }
    }

    /// The registry an image reference names: its first component when that looks like a
    /// host (has a dot or a port, or is localhost); nil for Docker Hub.
    public static func registry(of image: String) -> String? {
        guard let slash = image.firstIndex(of: "/") else { return nil }
        let first = image[..<slash]
        return first.contains(".") || first.contains(":") || first == "localhost" ? String(first) : nil
    }

    public var description: String {
        "\(username) (password hidden)\(server.map { " for \($0)" } ?? "")"
    }
}
