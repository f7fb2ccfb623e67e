#if canImport(Glibc)
import Glibc
#endif
import NetRPC
import NetRuntime
import NetTestSupport
import Testing

@Suite("A Python client written from docs/PROTOCOL.md", .timeLimit(.minutes(1)))
struct PythonClientTests {
    static let script: String = {
        var path = #filePath
        path.removeLast("PythonClientTests.swift".count)
        return path + "Python/rpc_client.py"
    }()

    static var hasPython: Bool { access("/usr/bin/python3", X_OK) == 0 }

    @Test("echo, an unknown method and a cancel against the real server", .enabled(if: hasPython))
    func python() async throws {
        let probe = Probe()
        try await withRuntime { runtime in
            let server = RPCServer(services: [TestService(probe: probe)])
            let address = try startServer(runtime, server: server)
            let child = try Self.spawn(["/usr/bin/python3", Self.script, "127.0.0.1", "\(address.port)"])
            let status = try await Self.exitStatus(of: child, on: runtime)
            #expect(status == 0)
            await probe.until { !$0.cancelled.isEmpty }
            #expect(probe.snapshot.cancelled == [10_000])
        }
    }

    /// Starts a program (posix_spawn: Foundation's Process is not used in tests) with its
    /// standard output on a pipe; returns its pid and the pipe's read end (non-blocking).
    static func spawn(_ arguments: [String]) throws -> (pid: pid_t, output: Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SpawnFailed(code: errno) }
        _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
        // Close-on-exec for both ends (dup2 in the child clears it on its stdout), so a program a
        // parallel test spawns cannot hold the write end open and delay our end of file.
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        let rc = posix_spawn(&pid, arguments[0], &actions, nil, argv, environ)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw SpawnFailed(code: rc)
        }
        return (pid, fds[0])
    }

    /// Waits for the program to exit without blocking a thread or polling: its output pipe
    /// reaches end of file when it exits, and the core's ring waits for readability.
    static func exitStatus(of child: (pid: pid_t, output: Int32), on runtime: Runtime) async throws -> Int32 {
        let fd = child.output
        defer { close(fd) }
        try await runtime.run(on: 0) { core in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
            defer { buffer.deallocate() }
            while true {
                try await core.waitReadable(fd)
                let n = read(fd, buffer.baseAddress, buffer.count)
                if n == 0 { break }
                if n > 0 { _ = write(1, buffer.baseAddress, n) }  // the client's lines, for the log
            }
        }
        var status: Int32 = 0
        waitpid(child.pid, &status, 0)  // it has exited: this returns at once
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

struct SpawnFailed: Error { var code: Int32 }
