public import Foundation

/// A client of an AWS JSON 1.1 API (SSM, ECR): each call is a signed POST of a JSON body
/// with `X-Amz-Target: PREFIX.Action`, answered with JSON. Errors keep AWS's `__type` and
/// message; throttling and failed connections are retried with backoff, as for
/// ``AWSQueryClient`` (both go through the same signed request).
public struct AWSJSONClient: Sendable {
    /// Where requests go, e.g. `https://ssm.us-east-1.amazonaws.com`.
    public let endpoint: URL
    /// The target prefix, e.g. `AmazonSSM` or `AmazonEC2ContainerRegistry_V20150921`.
    public let targetPrefix: String
    let signer: SigV4Signer
    /// How many times a throttled or failed call is tried in all.
    public var attempts = 6
    /// How long one attempt may take.
    public var timeout: Duration = .seconds(20)

    /// A client of `service` at `endpoint`.
    public init(service: String, targetPrefix: String, endpoint: URL, region: String, credentials: AWSCredentials) {
        self.endpoint = endpoint
        self.targetPrefix = targetPrefix
        self.signer = SigV4Signer(credentials: credentials, region: region, service: service)
    }

    /// Calls `action` with the JSON object `input` and decodes the answer as `T`.
    public func call<T: Decodable>(_ action: String, _ input: [String: Any] = [:], as type: T.Type) async throws(AWSError) -> T {
        let body: [UInt8]
        do {
            body = Array(try JSONSerialization.data(withJSONObject: input))
        } catch {
            throw AWSError(code: "InvalidInput", message: "\(action): the input is not JSON: \(error)")
        }
        let data = try await AWSRequest.post(
            body, headers: [("Content-Type", "application/x-amz-json-1.1"), ("X-Amz-Target", "\(targetPrefix).\(action)")],
            action: action, endpoint: endpoint, signer: signer, attempts: attempts, timeout: timeout
        ) { data, status in Self.error(in: data, status: status, action: action) }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw AWSError(code: "UnreadableAnswer", message: "\(action): the answer could not be read (\(error)): \(String(decoding: data.prefix(400), as: UTF8.self))")
        }
    }

    /// The AWS error a JSON answer carries: `__type` (perhaps with a namespace,
    /// `com.amazonaws.ssm#ParameterNotFound`) and `message`.
    static func error(in data: Data, status: UInt, action: String) -> AWSError {
        struct Failure: Decodable {
            var type: String?
            var message: String?
            var Message: String?
            enum CodingKeys: String, CodingKey { case type = "__type", message, Message }
        }
        let failure = try? JSONDecoder().decode(Failure.self, from: data)
        guard let code = failure?.type?.split(separator: "#").last.map(String.init) else {
            return AWSError(code: "HTTP\(status)", message: "\(action) failed with HTTP \(status): \(String(decoding: data.prefix(400), as: UTF8.self))")
        }
        return AWSError(code: code, message: "\(action): \(failure?.message ?? failure?.Message ?? "no message")")
    }
}

/// The SSM call the AWS provider makes: reading a (public) parameter.
public struct SSM: Sendable {
    /// The JSON client the calls go through.
    public let client: AWSJSONClient

    /// SSM in `region` at `endpoint`.
    public init(endpoint: URL, region: String, credentials: AWSCredentials) {
        client = AWSJSONClient(service: "ssm", targetPrefix: "AmazonSSM", endpoint: endpoint, region: region, credentials: credentials)
    }

    /// The value of the parameter `name`, e.g. an AMI id from AWS's public parameters.
    public func parameter(_ name: String) async throws(AWSError) -> String {
        struct Answer: Decodable {
            struct Parameter: Decodable { var Value: String }
            var Parameter: Parameter
        }
        return try await client.call("GetParameter", ["Name": name], as: Answer.self).Parameter.Value
    }

    /// The public parameter of Canonical's Ubuntu 22.04 LTS AMI for x86-64.
    public static let ubuntuAMI = "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id"
    /// The public parameter of AWS's Deep Learning AMI (NVIDIA driver, Docker and the NVIDIA
    /// container toolkit) on Ubuntu 22.04 for x86-64.
    public static let deepLearningAMI = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
}

/// The ECR call the clusters make: a registry login token from the caller's AWS credentials.
public struct ECR: Sendable {
    /// The JSON client the calls go through.
    public let client: AWSJSONClient

    /// ECR in `region` at `endpoint`.
    public init(endpoint: URL, region: String, credentials: AWSCredentials) {
        client = AWSJSONClient(
            service: "ecr", targetPrefix: "AmazonEC2ContainerRegistry_V20150921", endpoint: endpoint, region: region, credentials: credentials)
    }

    /// A `docker login` user name and password for the registry of `account` (valid for 12
    /// hours), and the registry's address.
    public func loginToken(account: String) async throws(AWSError) -> (username: String, password: String, endpoint: String) {
        struct Answer: Decodable {
            struct Authorization: Decodable {
                var authorizationToken: String
                var proxyEndpoint: String?
            }
            var authorizationData: [Authorization]
        }
        let answer = try await client.call("GetAuthorizationToken", ["registryIds": [account]], as: Answer.self)
        guard let data = answer.authorizationData.first, let decoded = Data(base64Encoded: data.authorizationToken),
            let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":")
        else {
            throw AWSError(code: "UnreadableAnswer", message: "GetAuthorizationToken answered without a user:password token")
        }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]), data.proxyEndpoint ?? "")
    }

    /// The account and region of an ECR registry host
    /// (`123456789012.dkr.ecr.us-east-1.amazonaws.com`), or nil for any other host.
    public static func registry(_ host: String) -> (account: String, region: String)? {
        let parts = host.split(separator: ".").map(String.init)
        guard parts.count >= 6, parts[0].count == 12, parts[0].allSatisfy(\.isNumber), parts[1] == "dkr",
            parts[2] == "ecr" || parts[2] == "ecr-fips", parts[4] == "amazonaws", parts[5] == "com"
        else { return nil }
        return (parts[0], parts[3])
    }
}
