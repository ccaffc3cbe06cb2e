#if canImport(FoundationEssentials)
package import FoundationEssentials
#else
package import Foundation
#endif

/// A request's input or a result: a JSON value and the binary attachments that its
/// `{"$attachment": index}` references stand for (PROTOCOL.md section 3).
package struct Payload: Sendable, Hashable {
    /// The JSON value.
    package var value: JSONValue
    /// The bytes of each attachment, in index order.
    package var attachments: [Data]

    package init(_ value: JSONValue, attachments: [Data] = []) {
        self.value = value
        self.attachments = attachments
    }

    /// Encodes `value`, each non-empty `Data` in it as an attachment.
    package init(encoding value: some Encodable) throws(ProtocolError) {
        var attachments: [Data]? = []
        self.value = try JSONBytes.encode(value, attachments: &attachments)
        self.attachments = attachments ?? []
    }

    /// Decodes the value as `type`, reading `Data` from base64 or from the attachments.
    package func decode<T: Decodable>(as type: T.Type, path: [String]) throws(ProtocolError) -> T {
        try JSONBytes.decode(T.self, from: value, path: path, attachments: attachments)
    }

    /// The value with each attachment reference replaced by its bytes in base64, for a peer
    /// that does not accept attachments (a `Data` decodes the same from either).
    package func inlined() -> JSONValue {
        attachments.isEmpty ? value : Self.inline(value, attachments)
    }

    private static func inline(_ value: JSONValue, _ attachments: [Data]) -> JSONValue {
        switch value {
        case .object(let members):
            if members.count == 1, case .integer(let index)? = members["$attachment"], attachments.indices.contains(Int(index)) {
                return .string(attachments[Int(index)].base64EncodedString())
            }
            return .object(members.mapValues { inline($0, attachments) })
        case .array(let elements):
            return .array(elements.map { inline($0, attachments) })
        default:
            return value
        }
    }

    /// The bytes of the JSON text and the attachments together, about.
    package var approximateSize: Int {
        attachments.reduce(value.approximateSize) { $0 + $1.count }
    }
}

extension JSONValue {
    /// A cheap estimate of the encoded size, to skip measuring small replies.
    package var approximateSize: Int {
        switch self {
        case .null, .bool, .integer, .double:
            return 8
        case .string(let text):
            return text.utf8.count
        case .array(let elements):
            var total = 2
            for element in elements { total += element.approximateSize }
            return total
        case .object(let members):
            var total = 2
            for (key, member) in members {
                total += key.utf8.count
                total += member.approximateSize
            }
            return total
        }
    }
}
