import Synchronization
import Testing
import YonderCluster

/// What `yonder up` prints: bars on a terminal, plain lines elsewhere.
struct ClusterProgressPrinterTests {
    final class Output: Sendable {
        let text = Mutex("")
        var value: String { text.withLock { $0 } }
        func append(_ more: String) { text.withLock { $0 += more } }
    }

    static let events = [
        ClusterProgress(node: 0, step: "upload", detail: "uploading yonder-agent (18 MB)"),
        ClusterProgress(node: 0, step: "upload", detail: "agent 4/18 MB", fraction: (4_000_000, 18_000_000)),
        ClusterProgress(node: 0, step: "upload", detail: "agent 18/18 MB", fraction: (18_000_000, 18_000_000)),
        ClusterProgress(node: 0, step: "upload", detail: "uploaded the agent (18 MB)", elapsed: .milliseconds(250)),
    ]

    @Test func aTerminalGetsOneBarRedrawnInPlace() {
        let output = Output()
        let printer = ClusterProgressPrinter(terminal: true) { output.append($0) }
        for event in Self.events { printer.print(event) }
        #expect(output.value == """
            [node 0] upload: uploading yonder-agent (18 MB)
            \r\u{1B}[K[node 0] upload [#####...................]  22% agent 4/18 MB\
            \r\u{1B}[K[node 0] upload [########################] 100% agent 18/18 MB\
            \r\u{1B}[K[node 0] upload: uploaded the agent (18 MB) (0.25 s)

            """)
    }

    @Test func aPipeGetsPlainLinesOnly() {
        let output = Output()
        let printer = ClusterProgressPrinter(terminal: false) { output.append($0) }
        for event in Self.events { printer.print(event) }
        printer.finish()
        #expect(output.value == "[node 0] upload: uploading yonder-agent (18 MB)\n[node 0] upload: uploaded the agent (18 MB) (0.25 s)\n")
    }

    @Test func aFailureEndsTheBarsLine() {
        let output = Output()
        let printer = ClusterProgressPrinter(terminal: true) { output.append($0) }
        printer.print(Self.events[1])
        printer.finish()
        #expect(output.value.hasSuffix("agent 4/18 MB\n"))
    }
}
