import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// What every AWS call shares, whatever its API's form: a SigV4-signed HTTPS POST, each
/// attempt bounded by `timeout`, with throttling (`RequestLimitExceeded`, `Throttling`),
/// server errors and failed connections retried with exponential backoff up to `attempts`
/// tries. Any other error is thrown as the API's own `errorIn` reads it from the answer.
enum AWSRequest {
    static func post(
        _ body: [UInt8], headers: [(name: String, value: String)], action: String, endpoint: URL, signer: SigV4Signer,
        attempts: Int, timeout: Duration, errorIn: (Data, UInt) -> AWSError
    ) async throws(AWSError) -> Data {
        var delay = 0.25
        var attempt = 1
        while true {
            let outcome: Result<Data, AWSError>
            do {
                outcome = try await once(body, headers: headers, endpoint: endpoint, signer: signer, timeout: timeout, errorIn: errorIn)
            } catch {
                outcome = .failure(AWSError(
                    code: "ConnectionFailed",
                    message: "\(action): could not reach \(endpoint) within \(timeout): \(error); check the network, or AWS_ENDPOINT_URL if it is set"
                        + (endpoint.host?.hasSuffix(".amazonaws.com") == true ? ", and that the region in the address exists (a region AWS does not have has no endpoint)" : "")))
            }
            switch outcome {
            case .success(let data):
                return data
            case .failure(let error) where attempt < attempts && retryable(error.code):
                attempt += 1
                try? await Task.sleep(for: .milliseconds(Int(delay * 1000 * Double.random(in: 0.8...1.2))))
                delay = min(delay * 2, 8)
            case .failure(let error):
                throw error
            }
        }
    }

    static func retryable(_ code: String) -> Bool {
        ["RequestLimitExceeded", "Throttling", "ThrottlingException", "ServiceUnavailable", "InternalError",
         "Unavailable", "ConnectionFailed", "HTTP500", "HTTP502", "HTTP503", "HTTP504"].contains(code)
    }

    private static func once(
        _ body: [UInt8], headers: [(name: String, value: String)], endpoint: URL, signer: SigV4Signer, timeout: Duration,
        errorIn: (Data, UInt) -> AWSError
    ) async throws -> Result<Data, AWSError> {
        let signed = signer.sign(SigV4Signer.Request(method: "POST", url: endpoint, headers: headers, body: body), at: Date())
        var request = HTTPClientRequest(url: endpoint.absoluteString)
        request.method = .POST
        for (name, value) in signed.headers where name.lowercased() != "host" {
            request.headers.add(name: name, value: value)
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        let nanoseconds = Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        let response = try await HTTPClient.shared.execute(request, timeout: .nanoseconds(nanoseconds))
        let data = Data(try await response.body.collect(upTo: 64 << 20).readableBytesView)
        if (200..<300).contains(response.status.code) { return .success(data) }
        return .failure(errorIn(data, response.status.code))
    }
}
