#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif

extension JSONValue {
    /// Encodes any `Encodable` value as a JSON value.
    public init(encoding value: some Encodable) throws(ProtocolError) {
        self = try JSONBytes.encode(value)
    }

    /// Decodes this JSON value as `type`. A failure is `decode_failed` with the coding path
    /// of the field that did not match, prefixed by `path`.
    public func decode<T: Decodable>(as type: T.Type, path prefix: [String] = []) throws(ProtocolError) -> T {
        try JSONBytes.decode(T.self, from: self, path: prefix)
    }

    /// Decodes the JSON text `data` as `type`, with the same errors as `decode(as:)`.
    public static func decode<T: Decodable>(_ type: T.Type, fromJSON data: some Collection<UInt8>, path prefix: [String] = []) throws(ProtocolError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(data))
        } catch {
            throw describe(error, decoding: T.self, prefix: prefix)
        }
    }

    /// A failure to decode `type` as `decode_failed`, with its coding path after `prefix`.
    static func describe(_ error: any Error, decoding type: Any.Type, prefix: [String]) -> ProtocolError {
        guard let error = error as? DecodingError else {
            return ProtocolError(.decodeFailed, "could not decode \(type): \(error)", path: prefix)
        }
        return describe(error, decoding: type, prefix: prefix)
    }

    private static func describe(_ error: DecodingError, decoding type: Any.Type, prefix: [String]) -> ProtocolError {
        func render(_ path: [any CodingKey]) -> [String] {
            prefix + path.map { $0.intValue.map(String.init) ?? $0.stringValue }
        }
        switch error {
        case .keyNotFound(let key, let context):
            let path = render(context.codingPath + [key])
            return ProtocolError(.decodeFailed, "\(type) needs the field \"\(key.stringValue)\"", path: path)
        case .typeMismatch(let expected, let context):
            return ProtocolError(.decodeFailed, "\(type): expected \(expected) at this position; \(context.debugDescription)", path: render(context.codingPath))
        case .valueNotFound(let expected, let context):
            return ProtocolError(.decodeFailed, "\(type): expected \(expected) but found null", path: render(context.codingPath))
        case .dataCorrupted(let context):
            return ProtocolError(.decodeFailed, "\(type): \(context.debugDescription)", path: render(context.codingPath))
        @unknown default:
            return ProtocolError(.decodeFailed, "could not decode \(type): \(error)", path: prefix)
        }
    }
}
