import NetTestSupport
import Testing

/// The server's swift-metrics instruments, checked in a child process (`NetRPCChild`): a metrics
/// backend is process-wide and can be bootstrapped once, and the other suites' servers would
/// count into it.
@Suite("RPC server metrics, in a child process", .timeLimit(.minutes(1)))
struct RPCMetricsTests {
    @Test("With a metrics backend bootstrapped, the server counts and times every call, and counts the failed ones")
    func countsAndTimesCalls() throws {
        let (values, output, status) = try runChildProgram("NetRPCChild", "metrics")
        #expect(status == 0, "child output: \(output)")
        #expect(values["echoed"] == "20")
        #expect(values["failed"] == "true")
        #expect(values["echoCalls"] == "20")
        #expect(values["echoErrors"] == "0")
        #expect(values["echoTimed"] == "20")
        #expect(values["echoTimedPositive"] == "true")
        #expect(values["failCalls"] == "1")
        #expect(values["failErrors"] == "1")
        #expect(values["failTimed"] == "1")
    }
}
