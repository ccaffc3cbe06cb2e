#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import YonderProtocol

/// The functions every agent has.
enum Builtins {
    static let ping = "yonder.ping"
    static let info = "yonder.info"

    static let entries: [FunctionEntry] = [
        FunctionEntry(name: ping, run: { input, _ in input }),
        FunctionEntry(name: info, json: { _, agent in try JSONValue(encoding: agent.info()) }),
        FunctionEntry(name: "yonder.objects", json: { _, agent in try JSONValue(encoding: agent.objects.references) }),
        FunctionEntry(name: "yonder.exec", json: { value, _ in try await Exec.run(value) }),
        FunctionEntry(name: "yonder.putFile", run: { input, _ in try Files.put(input) }),
        FunctionEntry(name: "yonder.getFile", run: { input, _ in try Files.get(input) }),
        FunctionEntry(name: "yonder.listFiles", json: { value, _ in try Files.list(value) }),
        FunctionEntry(name: "yonder.job.start", json: { value, agent in try agent.jobs.start(value) }),
        FunctionEntry(name: "yonder.job.list", json: { _, agent in try agent.jobs.list() }),
        FunctionEntry(name: "yonder.job.logs", json: { value, agent in try await agent.jobs.logs(value) }),
        FunctionEntry(name: "yonder.job.cancel", json: { value, agent in try await agent.jobs.cancel(value) }),
        FunctionEntry(name: "yonder.swap", json: { value, _ in try await Swap.run(value) }),
    ]

    /// The built-ins' names: these run in the agent itself, never in a worker.
    static let names = Set(entries.map(\.name))

    static var hostname: String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "unknown" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static var operatingSystem: String {
        var names = utsname()
        uname(&names)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let kernel = "\(field(names.sysname)) \(field(names.release)) \(field(names.machine))"
        if let release = try? String(contentsOfFile: "/etc/os-release", encoding: .utf8),
            let line = release.split(separator: "\n").first(where: { $0.hasPrefix("PRETTY_NAME=") })
        {
            let pretty = line.dropFirst("PRETTY_NAME=".count).filter { $0 != "\"" }
            return "\(pretty) (\(kernel))"
        }
        return kernel
    }
}
