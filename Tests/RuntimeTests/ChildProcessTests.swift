#if canImport(Glibc)
import Glibc
#endif
import NetTestSupport
import Testing

/// Runs a scenario of `NetRuntimeChild` (built beside the test bundle) and returns its
/// `key=value` lines, its whole output (stdout and stderr, with the logs) and its exit status.
/// Uses posix_spawn directly: Foundation's Process crashed here while other suites ran.
func runChild(_ scenario: String) throws -> (values: [String: String], output: String, status: Int32) {
    var path = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &path, 4095)
    let exe = String(decoding: path[..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let child = String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)]) + "/NetRuntimeChild"

    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw IOErrorForTest(errno) }
    _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
    _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
    var pid: pid_t = 0
    let argv: [UnsafeMutablePointer<CChar>?] = [strdup(child), strdup(scenario), nil]
    defer { for arg in argv { free(arg) } }
    let rc = posix_spawn(&pid, child, &actions, nil, argv, environ)
    close(fds[1])
    guard rc == 0 else { close(fds[0]); throw IOErrorForTest(rc) }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let got = read(fds[0], &chunk, chunk.count)
        if got > 0 { output += chunk[..<got] } else if got == 0 || errno != EINTR { break }
    }
    close(fds[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let text = String(decoding: output, as: UTF8.self)
    var values: [String: String] = [:]
    for line in text.split(separator: "\n") {
        guard let eq = line.firstIndex(of: "=") else { continue }
        let key = line[..<eq]
        if !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber }) {
            values[String(key)] = String(line[line.index(after: eq)...])
        }
    }
    // WIFEXITED / WEXITSTATUS by hand: the macros do not import.
    return (values, text, (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f))
}

struct IOErrorForTest: Error {
    let code: Int32
    init(_ code: Int32) { self.code = code }
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

    @Test("A graceful shutdown with work in flight leaves no descriptor open and refuses later work")
    func shutdownLeavesNoDescriptor() throws {
        let (values, output, status) = try runChild("shutdown-fds")
        #expect(status == 0, "child output: \(output)")
        // The work really held descriptors (listener, 16 sockets, rings) while in flight.
        #expect(Int(values["during"] ?? "") ?? 0 >= 20)
        #expect(values["leaked"] == "")
        #expect(values["refusedAfter"] == "true")
    }
}
