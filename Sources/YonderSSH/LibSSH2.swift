internal import CLibSSH2
import Synchronization

/// Process-wide libssh2 set-up.
enum LibSSH2 {
    private static let initialized = Mutex(false)

    /// Calls `libssh2_init` once per process.
    static func initialize() {
        initialized.withLock { done in
            if !done {
                _ = libssh2_init(0)
                done = true
            }
        }
    }

    /// The libssh2 version string this process runs with.
    static var version: String {
        libssh2_version(0).map { String(cString: $0) } ?? "unknown"
    }
}

extension String {
    /// Calls `body` with the string's UTF-8 bytes and their count, as libssh2's `_ex`
    /// functions take them (never `String.count`).
    func withUTF8Length<R>(_ body: (UnsafePointer<CChar>, UInt32) throws -> R) rethrows -> R {
        try withCString { pointer in try body(pointer, UInt32(utf8.count)) }
    }
}
