public import Foundation
import XMLCoder

/// A client of one AWS service's Query API (EC2, and the Query form of others): each call is
/// an HTTPS POST of `Action=…&Version=…&…` as a form, signed with SigV4, whose answer is XML.
///
/// Throttling (`RequestLimitExceeded`, `Throttling`), server errors and dropped connections
/// are retried with exponential backoff; every other AWS error is thrown as `AWSError` with
/// AWS's own code and message.
public struct AWSQueryClient: Sendable {
    /// Where requests go, e.g. `https://ec2.us-east-1.amazonaws.com`.
    public let endpoint: URL
    /// The API version sent with every call, e.g. `2016-11-15` for EC2.
    public let version: String
    let signer: SigV4Signer
    /// How many times a throttled or failed call is tried in all.
    public var attempts = 6
    /// How long one attempt may take, connecting included (the HTTP client retries a
    /// refused connection until then).
    public var timeout: Duration = .seconds(20)

    /// A client of `service` at `endpoint`, signing with `credentials` for `region`.
    public init(service: String, version: String, endpoint: URL, region: String, credentials: AWSCredentials) {
        self.endpoint = endpoint
        self.version = version
        self.signer = SigV4Signer(credentials: credentials, region: region, service: service)
    }

    /// Calls `action` with `parameters` and decodes the XML answer as `T`.
    public func call<T: Decodable>(_ action: String, _ parameters: [(String, String)] = [], as type: T.Type) async throws(AWSError) -> T {
        let body = try await send(action, parameters)
        do {
            return try XMLDecoder().decode(T.self, from: body)
        } catch {
            throw AWSError(
                code: "UnreadableAnswer",
                message: "\(action): the answer from \(endpoint) could not be read (\(error)): \(String(decoding: body.prefix(400), as: UTF8.self))")
        }
    }

    /// Calls `action` and returns the raw XML of a successful answer.
    public func send(_ action: String, _ parameters: [(String, String)] = []) async throws(AWSError) -> Data {
        let form = ([("Action", action), ("Version", version)] + parameters)
            .map { "\(SigV4Signer.encode($0.0))=\(SigV4Signer.encode($0.1))" }
            .joined(separator: "&")
        return try await AWSRequest.post(
            Array(form.utf8), headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")], action: action,
            endpoint: endpoint, signer: signer, attempts: attempts, timeout: timeout
        ) { data, status in Self.error(in: data, status: status, action: action) }
    }

    /// The AWS error an answer carries: `<Response><Errors><Error><Code>…` (EC2) or
    /// `<ErrorResponse><Error><Code>…` (the other Query APIs).
    static func error(in data: Data, status: UInt, action: String) -> AWSError {
        struct Detail: Decodable { var Code: String?; var Message: String? }
        struct Errors: Decodable { var Error: [Detail]? }
        struct Answer: Decodable {
            var Errors: Errors?
            var Error: Detail?
        }
        let answer = try? XMLDecoder().decode(Answer.self, from: data)
        let detail = answer?.Errors?.Error?.first ?? answer?.Error
        guard let code = detail?.Code else {
            return AWSError(code: "HTTP\(status)", message: "\(action) failed with HTTP \(status): \(String(decoding: data.prefix(400), as: UTF8.self))")
        }
        return AWSError(code: code, message: "\(action): \(detail?.Message ?? "no message")")
    }
}

/// An XML list of `<item>` elements, empty when the element is empty or absent.
public struct ItemList<Element: Decodable & Sendable>: Decodable, Sendable {
    /// The items, in order.
    public var items: [Element]

    enum CodingKeys: String, CodingKey { case item }

    /// Decodes `<item>` children.
    public init(from decoder: any Decoder) throws {
        guard let container = try? decoder.container(keyedBy: CodingKeys.self), container.contains(.item) else {
            items = []
            return
        }
        items = try container.decode([Element].self, forKey: .item)
    }
}
