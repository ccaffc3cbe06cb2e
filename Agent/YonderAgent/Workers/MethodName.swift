#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Readable names for the methods of distributed actors, whose wire names are the
/// compiler's mangled identifiers.
enum MethodName {
    /// `increment(by:)` for the mangled name of `Counter.increment(by:)`; the mangled name
    /// itself when the runtime cannot demangle it.
    static func readable(_ mangled: String) -> String {
        guard let raw = mangled.withCString({ swiftDemangle($0, strlen($0), nil, nil, 0) }) else { return mangled }
        defer { free(raw) }
        var text = String(cString: raw)
        if text.hasPrefix("distributed thunk ") { text.removeFirst("distributed thunk ".count) }
        // `Module.Type.method(label: Swift.Int) -> Swift.Int` → `method(label:)`.
        guard let open = text.firstIndex(of: "(") else { return text }
        let path = text[..<open]
        let base = path.split(separator: ".").last.map(String.init) ?? String(path)
        // The parameters, split at the commas outside brackets; each is `label: Type` or `Type`.
        var parameters: [String] = []
        var current = ""
        var depth = 0
        for character in text[open...].dropFirst() {
            if depth == 0 && character == ")" {
                if !current.isEmpty { parameters.append(current) }
                break
            }
            switch character {
            case "(", "<", "[": depth += 1
            case ")", ">", "]": depth -= 1
            case "," where depth == 0:
                parameters.append(current)
                current = ""
                continue
            default: break
            }
            current.append(character)
        }
        let labels = parameters.map { parameter -> String in
            let text = parameter.trimmingWhitespace
            guard let colon = text.firstIndex(of: ":"), !text[..<colon].contains(where: { "(<[.".contains($0) }) else { return "_:" }
            return text[..<colon] + ":"
        }.joined()
        return "\(base)(\(labels))"
    }
}

/// The Swift runtime's demangler (exported by every Swift runtime).
@_silgen_name("swift_demangle")
private func swiftDemangle(
    _ mangledName: UnsafePointer<CChar>?, _ mangledNameLength: Int, _ outputBuffer: UnsafeMutablePointer<CChar>?,
    _ outputBufferSize: UnsafeMutablePointer<Int>?, _ flags: UInt32
) -> UnsafeMutablePointer<CChar>?
