public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Whether the writable memory of process `pid` (its heap, stack and anonymous mappings, where
/// a copied environment lives) holds `needle`. Needs the right to trace the process (the same
/// user, or root). Nil when the memory cannot be read.
public func processMemory(of pid: pid_t, contains needle: String) -> Bool? {
    guard let maps = try? String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8) else { return nil }
    let fd = open("/proc/\(pid)/mem", O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    let pattern = Array(needle.utf8)
    var readAny = false
    for line in maps.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 2, fields[1].hasPrefix("rw") else { continue }
        let range = fields[0].split(separator: "-").compactMap { UInt64($0, radix: 16) }
        guard range.count == 2, range[1] > range[0], range[1] - range[0] < 1 << 30 else { continue }
        var buffer = [UInt8](repeating: 0, count: Int(range[1] - range[0]))
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(range[0])) }
        guard count > 0 else { continue }
        readAny = true
        let bytes = buffer[0..<count]
        if bytes.count >= pattern.count,
            bytes.indices.dropLast(pattern.count - 1).contains(where: { start in bytes[start] == pattern[0] && bytes[start..<start + pattern.count].elementsEqual(pattern) })
        {
            return true
        }
    }
    return readAny ? false : nil
}
