public import Foundation

/// AWS credentials: an access key, its secret, and for temporary credentials a session token.
public struct AWSCredentials: Sendable, Hashable {
    /// The access key id, e.g. `AKIA…` or `ASIA…`.
    public var accessKeyID: String
    /// The secret access key. Never printed: `description` leaves it out.
    public var secretAccessKey: String
    /// The session token of temporary credentials.
    public var sessionToken: String?
    /// Where they were found, for messages: `environment`, `~/.aws/credentials [default]`, …
    public var source: String

    /// Credentials given directly.
    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, source: String = "given") {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.source = source
    }
}

extension AWSCredentials: CustomStringConvertible {
    /// The key id and where it came from; never the secret or the token.
    public var description: String { "\(accessKeyID) (from \(source))" }
}

/// Where the AWS CLI looks for credentials and settings, and what it finds there: the
/// environment, then the shared credentials file, then the config file, for the profile
/// `AWS_PROFILE` (else `default`).
///
/// Everything is read from the `environment` and `home` given, so that a caller (or a test)
/// can point it at another user's files.
public struct AWSConfiguration: Sendable {
    /// The environment variables consulted.
    public var environment: [String: String]
    /// The home folder holding `.aws/`.
    public var home: String

    /// The process's own environment and home folder.
    public init(environment: [String: String] = ProcessInfo.processInfo.environment, home: String? = nil) {
        self.environment = environment
        self.home = home ?? environment["HOME"] ?? NSHomeDirectory()
    }

    /// The profile in use: `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`, else `default`.
    public var profile: String {
        nonEmpty("AWS_PROFILE") ?? nonEmpty("AWS_DEFAULT_PROFILE") ?? "default"
    }

    var credentialsFile: String { nonEmpty("AWS_SHARED_CREDENTIALS_FILE") ?? "\(home)/.aws/credentials" }
    var configFile: String { nonEmpty("AWS_CONFIG_FILE") ?? "\(home)/.aws/config" }

    /// The credentials, found as the AWS CLI finds them; the error says every place looked.
    public func credentials() throws(AWSError) -> AWSCredentials {
        if let key = nonEmpty("AWS_ACCESS_KEY_ID"), let secret = nonEmpty("AWS_SECRET_ACCESS_KEY") {
            return AWSCredentials(
                accessKeyID: key, secretAccessKey: secret, sessionToken: nonEmpty("AWS_SESSION_TOKEN"), source: "environment")
        }
        let profile = self.profile
        let places: [(file: String, section: String)] = [
            (credentialsFile, profile),
            (configFile, profile == "default" ? "default" : "profile \(profile)"),
        ]
        for (file, section) in places {
            guard let values = try INIFile.read(file)?[section] else { continue }
            if let key = values["aws_access_key_id"], let secret = values["aws_secret_access_key"], !key.isEmpty, !secret.isEmpty {
                return AWSCredentials(
                    accessKeyID: key, secretAccessKey: secret, sessionToken: values["aws_session_token"] ?? values["aws_security_token"],
                    source: "\(file) [\(section)]")
            }
        }
        throw AWSError(
            code: "NoCredentials",
            message: "no AWS credentials found: looked in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, in \(credentialsFile) [\(profile)] and in \(configFile) [\(places[1].section)]; set them with `aws configure`, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)")
    }

    /// The region: `given` (from the spec), else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else
    /// the profile's `region` in the config file.
    public func region(_ given: String? = nil) throws(AWSError) -> String {
        let section = profile == "default" ? "default" : "profile \(profile)"
        let found: (String, String)? =
            if let given, !given.isEmpty { (given, "the spec's region") }
            else if let region = nonEmpty("AWS_REGION") { (region, "AWS_REGION") }
            else if let region = nonEmpty("AWS_DEFAULT_REGION") { (region, "AWS_DEFAULT_REGION") }
            else if let region = try INIFile.read(configFile)?[section]?["region"], !region.isEmpty { (region, "\(configFile) [\(section)]") }
            else { nil }
        if let (region, origin) = found {
            // us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1, cn-north-1, …
            guard region.wholeMatch(of: /[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}/) != nil else {
                throw AWSError(code: "UnknownRegion", message: "\"\(region)\" (from \(origin)) is not an AWS region name; regions are named like us-east-1 or eu-central-1")
            }
            return region
        }
        throw AWSError(
            code: "NoRegion",
            message: "no AWS region: give `region:` in the spec, or set AWS_REGION, or `region` in \(configFile) [\(section)]")
    }

    /// The endpoint of `service` (`ec2`, `ssm`, `ecr`, …) in `region`:
    /// `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`, else AWS's own.
    public func endpoint(service: String, region: String) throws(AWSError) -> URL {
        let specific = "AWS_ENDPOINT_URL_" + service.uppercased().replacingOccurrences(of: "-", with: "_")
        let text = nonEmpty(specific) ?? nonEmpty("AWS_ENDPOINT_URL") ?? Self.defaultEndpoint(service: service, region: region)
        guard let url = URL(string: text), let scheme = url.scheme, ["http", "https"].contains(scheme.lowercased()), url.host != nil else {
            throw AWSError(code: "InvalidEndpoint", message: "the endpoint \(text) for \(service) is not an http(s) URL (from \(specific) or AWS_ENDPOINT_URL)")
        }
        return url
    }

    /// A client of `service` (`EC2.init`, `SSM.init`, …) made with the endpoint, region and
    /// credentials found here, the region being `region` when given (see `region(_:)`).
    public func client<Client>(
        _ service: String, region given: String? = nil, _ make: (_ endpoint: URL, _ region: String, _ credentials: AWSCredentials) -> Client
    ) throws(AWSError) -> Client {
        let region = try region(given)
        return make(try endpoint(service: service, region: region), region, try credentials())
    }

    static func defaultEndpoint(service: String, region: String) -> String {
        let suffix = region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
        let host = service == "ecr" ? "api.ecr" : service
        return "https://\(host).\(region).\(suffix)"
    }

    private func nonEmpty(_ name: String) -> String? {
        guard let value = environment[name], !value.isEmpty else { return nil }
        return value
    }
}

/// An error from AWS or from finding what talking to it needs: AWS's own code and message
/// are kept.
public struct AWSError: Error, Sendable, Hashable, CustomStringConvertible {
    /// AWS's error code (`InvalidParameterValue`, `UnauthorizedOperation`, …) or Yonder's
    /// (`NoCredentials`, `NoRegion`).
    public var code: String
    /// What went wrong, and what to do.
    public var message: String

    /// Makes an error.
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    /// `code: message`.
    public var description: String { "\(code): \(message)" }
}

/// The INI files of the AWS CLI: `[section]` lines, `key = value` lines, `#` and `;`
/// comments. Nested (indented) values are skipped.
enum INIFile {
    /// The sections of `path`, or nil when there is no such file.
    static func read(_ path: String) throws(AWSError) -> [String: [String: String]]? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AWSError(code: "UnreadableConfig", message: "cannot read \(path); check its permissions")
        }
        return parse(String(decoding: data, as: UTF8.self))
    }

    static func parse(_ text: String) -> [String: [String: String]] {
        var sections: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            if rawLine.first == " " || rawLine.first == "\t" { continue }
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                let name = line.dropFirst().dropLast().split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
                current = name
                sections[name, default: [:]] = sections[name] ?? [:]
                continue
            }
            guard let current, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            sections[current, default: [:]][key] = value
        }
        return sections
    }
}
