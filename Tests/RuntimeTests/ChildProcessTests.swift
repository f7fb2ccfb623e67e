#if canImport(Glibc)
import Glibc
#endif
import NetTestSupport
import Testing

/// Runs a scenario of `NetRuntimeChild` (built beside the test bundle): see ``runChildProgram``.
func runChild(_ scenario: String) throws -> (values: [String: String], output: String, status: Int32) {
    try runChildProgram("NetRuntimeChild", scenario)
}

@Suite("In a child process", .timeLimit(.minutes(1)))
struct ChildProcessTests {
    @Test("Where io_uring_setup is forbidden (seccomp, EPERM), epoll is chosen, logged, and carries a TCP echo")
    func seccompFallsBackToEpoll() throws {
        let (values, output, status) = try runChild("seccomp-echo")
        #expect(status == 0, "child output: \(output)")
        #expect(values["seccomp"] == "installed")
        #expect(values["backend"] == "epoll")
        #expect(values["echo"] == "ok")
        #expect(output.contains("runtime backend: epoll"))
        #expect(output.contains("EPERM"))
    }

    @Test("A graceful shutdown, or a stop at once, with work in flight leaves no descriptor open (also those its tasks close on the way out) and refuses later work", arguments: ["shutdown-fds", "stop-fds"])
    func shutdownLeavesNoDescriptor(scenario: String) throws {
        let (values, output, status) = try runChild(scenario)
        #expect(status == 0, "child output: \(output)")
        // The work really held descriptors (listener, 16 sockets, rings) while in flight.
        #expect(Int(values["during"] ?? "") ?? 0 >= 20)
        #expect(values["leaked"] == "")
        #expect(values["refusedAfter"] == "true")
    }
}
