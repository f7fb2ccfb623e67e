#if canImport(Glibc)
import Glibc
#endif
import NetRPC
import NetRuntime
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
            let status = try await Self.run(["/usr/bin/python3", Self.script, "127.0.0.1", "\(address.port)"])
            #expect(status == 0)
            #expect(await probe.wait { $0.cancelled == [10_000] })
        }
    }

    /// Runs a program (posix_spawn: Foundation's Process is not used in tests) and returns its
    /// exit status, polling without blocking a thread of the cooperative pool.
    static func run(_ arguments: [String]) async throws -> Int32 {
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        let rc = posix_spawn(&pid, arguments[0], nil, nil, argv, environ)
        guard rc == 0 else { throw SpawnFailed(code: rc) }
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) == 0 { try await Task.sleep(for: .milliseconds(10)) }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

struct SpawnFailed: Error { var code: Int32 }
