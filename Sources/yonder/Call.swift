import ArgumentParser
import Foundation
import Yonder
import YonderCluster

struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call a remote function with JSON input and print its JSON result.",
        discussion: """
            The input is the function's argument as JSON (null when omitted; - reads it from \
            standard input). Log lines the function writes go to standard error.

            Examples:
              yonder call demo yonder.ping
              yonder call demo Add '[1, 2, 3]'
              echo '{"text": "hi"}' | yonder call demo --node 1 Echo -
            """)

    @OptionGroup var target: NodeOptions

    @Argument(help: "The function's registered name.")
    var function: String

    @Argument(help: "Its input as JSON, or - to read it from standard input.")
    var json: String?

    @Option(help: "Give up after this many seconds.")
    var timeout: Double?

    @Flag(help: "Indent the result.")
    var pretty = false

    func run() async throws {
        try await reportingErrors {
            let arguments = try Self.parse(json, function: function, cluster: target.name)
            let result = try await withCluster(target.name) { cluster in
                try await cluster.connection(node: target.node).call(
                    function, arguments: arguments, timeout: timeout.map { .milliseconds(Int64($0 * 1000)) },
                    onLog: { printError("[\($0.level)] \($0.message)") })
            }
            try printJSON(result, pretty: pretty)
        }
    }

    /// The JSON input, read and checked before anything connects.
    static func parse(_ text: String?, function: String, cluster: String) throws -> JSONValue {
        guard let text else { return .null }
        let bytes = text == "-" ? [UInt8](FileHandle.standardInput.readDataToEndOfFile()) : Array(text.utf8)
        do {
            return try JSONBytes.parse(bytes)
        } catch {
            // "the frame's payload is not valid JSON: <what> at byte <n>" → "<what> at byte <n>"
            let reason = error.message.components(separatedBy: "JSON: ").last ?? error.message
            throw ValidationError("the input for \(function) is not valid JSON (\(reason)); quote it for the shell, e.g. yonder call \(cluster) \(function) '[1, 2]'")
        }
    }
}
