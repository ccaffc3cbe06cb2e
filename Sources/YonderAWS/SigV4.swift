public import Foundation
import Crypto

/// AWS Signature Version 4 (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html):
/// signs an HTTP request with the caller's credentials for one service in one region.
///
/// It signs every header it is given plus `host`, `x-amz-date` and, with temporary
/// credentials, `x-amz-security-token`; the payload is hashed whole (SHA-256). It matches
/// botocore's signer, which the tests check it against.
public struct SigV4Signer: Sendable {
    /// The credentials requests are signed with.
    public var credentials: AWSCredentials
    /// The region, e.g. `us-east-1`.
    public var region: String
    /// The service's signing name, e.g. `ec2`, `ssm`, `ecr`.
    public var service: String

    /// A signer for `service` in `region`.
    public init(credentials: AWSCredentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// A request to sign: everything that goes into the signature.
    public struct Request: Sendable {
        /// `GET`, `POST`, …
        public var method: String
        /// The endpoint's URL (scheme, host, port and path; no query).
        public var url: URL
        /// Query parameters, in any order, not yet percent-encoded.
        public var query: [(name: String, value: String)]
        /// Headers to send and sign (besides those the signer adds).
        public var headers: [(name: String, value: String)]
        /// The body.
        public var body: [UInt8]

        /// Describes a request.
        public init(
            method: String, url: URL, query: [(name: String, value: String)] = [],
            headers: [(name: String, value: String)] = [], body: [UInt8] = []
        ) {
            self.method = method
            self.url = url
            self.query = query
            self.headers = headers
            self.body = body
        }
    }

    /// A signed request: the headers to send (the request's own, then `Host`, `X-Amz-Date`,
    /// `X-Amz-Security-Token` if any, and `Authorization`), the query string to put in the
    /// URL, and the intermediate texts, for diagnosis.
    public struct Signed: Sendable {
        /// Every header to send.
        public var headers: [(name: String, value: String)]
        /// The percent-encoded query string (without `?`), in canonical order.
        public var queryString: String
        /// The canonical request that was hashed.
        public var canonicalRequest: String
        /// The string that was signed.
        public var stringToSign: String
        /// The signature, lowercase hex.
        public var signature: String
        /// The `Authorization` header's value.
        public var authorization: String
    }

    /// Signs `request` as of `date`.
    public func sign(_ request: Request, at date: Date) -> Signed {
        let timestamp = Self.timestamp(date)
        let day = String(timestamp.prefix(8))
        var headers = request.headers
        if !headers.contains(where: { $0.name.lowercased() == "host" }) {
            headers.append(("Host", Self.hostHeader(request.url)))
        }
        headers.removeAll { $0.name.lowercased() == "x-amz-date" || $0.name.lowercased() == "authorization" }
        headers.append(("X-Amz-Date", timestamp))
        if let token = credentials.sessionToken {
            headers.removeAll { $0.name.lowercased() == "x-amz-security-token" }
            headers.append(("X-Amz-Security-Token", token))
        }

        // Lowercase names, values trimmed with inner runs of spaces made one; repeated names
        // joined with commas, in the order given.
        var canonical: [String: [String]] = [:]
        for (name, value) in headers {
            canonical[name.lowercased().trimmingCharacters(in: .whitespaces), default: []]
                .append(value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).joined(separator: " "))
        }
        let names = canonical.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(canonical[$0]!.joined(separator: ","))\n" }.joined()
        let signedHeaders = names.joined(separator: ";")
        let queryString = Self.canonicalQuery(request.query)
        let path = request.url.path.isEmpty ? "/" : Self.encode(request.url.path, keepingSlashes: true)
        let payloadHash = Self.hex(SHA256.hash(data: request.body))
        let canonicalRequest = [
            request.method.uppercased(), path, queryString, canonicalHeaders, signedHeaders, payloadHash,
        ].joined(separator: "\n")

        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = [
            "AWS4-HMAC-SHA256", timestamp, scope, Self.hex(SHA256.hash(data: Array(canonicalRequest.utf8))),
        ].joined(separator: "\n")

        var key = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        let authorization =
            "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        headers.append(("Authorization", authorization))
        return Signed(
            headers: headers, queryString: queryString, canonicalRequest: canonicalRequest, stringToSign: stringToSign,
            signature: signature, authorization: authorization)
    }

    /// `YYYYMMDD'T'HHMMSS'Z'` in UTC.
    static func timestamp(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func two(_ n: Int?) -> String { n.map { $0 < 10 ? "0\($0)" : "\($0)" } ?? "00" }
        return "\(c.year ?? 1970)\(two(c.month))\(two(c.day))T\(two(c.hour))\(two(c.minute))\(two(c.second))Z"
    }

    /// The `Host` header for `url`: the host, and the port when it is not the scheme's default.
    static func hostHeader(_ url: URL) -> String {
        let host = url.host ?? ""
        guard let port = url.port else { return host }
        let scheme = url.scheme?.lowercased()
        if (scheme == "https" && port == 443) || (scheme == "http" && port == 80) { return host }
        return "\(host):\(port)"
    }

    /// Parameters percent-encoded and sorted by name, then value.
    static func canonicalQuery(_ query: [(name: String, value: String)]) -> String {
        query.map { (encode($0.name), encode($0.value)) }
            .sorted { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            .map { "\($0.0)=\($0.1)" }
            .joined(separator: "&")
    }

    /// RFC 3986 percent-encoding: everything but `A–Z a–z 0–9 - _ . ~` (and `/` when kept)
    /// as `%XX` of its UTF-8 bytes, uppercase hex.
    static func encode(_ text: String, keepingSlashes: Bool = false) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(UnicodeScalar(byte))
            case UInt8(ascii: "/") where keepingSlashes:
                out.append("/")
            default:
                let digits = Array("0123456789ABCDEF".utf8)
                out.append("%")
                out.unicodeScalars.append(UnicodeScalar(digits[Int(byte >> 4)]))
                out.unicodeScalars.append(UnicodeScalar(digits[Int(byte & 0xF)]))
            }
        }
        return out
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
