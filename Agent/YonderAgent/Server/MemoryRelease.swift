import CAgentSupport
import Dispatch
import Synchronization

/// Gives the memory a finished connection or request used back to the system. glibc keeps
/// freed heap memory (and, once a large block was freed, serves later large ones from the
/// heap too), so without this a 40 MiB argument left the agent 32 MiB bigger for good.
enum MemoryRelease {
    private static let scheduled = Atomic(false)

    /// Releases free memory half a second from now, once for a burst of calls.
    static func soon() {
        guard scheduled.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) {
            scheduled.store(false, ordering: .relaxed)
            _ = yonder_release_free_memory()
        }
    }
}
