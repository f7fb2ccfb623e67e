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

    /// Starts a program with its standard output on a pipe, made non-blocking for the ring.
    static func spawn(_ arguments: [String]) throws -> (pid: pid_t, output: Int32) {
        let child = try spawnProcess(arguments)
        _ = fcntl(child.output, F_SETFL, fcntl(child.output, F_GETFL) | O_NONBLOCK)
        return child
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
        return waitForExit(child.pid)  // it has exited: this returns at once
    }
}
