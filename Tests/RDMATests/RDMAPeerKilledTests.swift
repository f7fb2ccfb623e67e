#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
@testable import NetRDMA
import NetTransport
import Synchronization
import NetTestSupport
import Testing

/// An echo server in a child process (`net-bench serve --layer transport --transport rdma`, built
/// beside the test bundle), so the test can kill it mid-transfer. posix_spawn, not Foundation's
/// Process (which crashed here).
final class ChildServer: Sendable {
    let pid: pid_t
    let port: Int
    private let killed = Mutex(false)

    private init(pid: pid_t, port: Int) {
        self.pid = pid
        self.port = port
    }

    static func start() throws -> ChildServer {
        var path = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &path, 4095)
        let exe = String(decoding: path[..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let binary = String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)]) + "/net-bench"
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ChildError("pipe: errno \(errno)") }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        var pid: pid_t = 0
        let arguments = [binary, "serve", "--layer", "transport", "--transport", "rdma", "--host", RDMATestEnvironment.address, "--port", "0"]
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        let rc = posix_spawn(&pid, binary, &actions, nil, argv, environ)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw ChildError("posix_spawn \(binary): \(rc)")
        }
        defer { close(fds[0]) }
        // Its first line says where it listens (read before any core runs: a short blocking read).
        var text = ""
        var byte: UInt8 = 0
        while !text.hasSuffix("\n"), read(fds[0], &byte, 1) == 1 { text.append(Character(UnicodeScalar(byte))) }
        guard let port = text.split(separator: "=").last.flatMap({ Int($0.filter(\.isNumber)) }) else {
            _ = Glibc.kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            throw ChildError("the server said \(text.debugDescription)")
        }
        return ChildServer(pid: pid, port: port)
    }

    /// Kills and reaps the child, once.
    func kill() {
        guard !killed.withLock({ killed in defer { killed = true }; return killed }) else { return }
        _ = Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}

struct ChildError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@Suite("RDMA peer killed on rxe0", .enabled(if: RDMATestEnvironment.inGuest, "needs the soft-RoCE guest (scripts/rdma-tests)"),
       .timeLimit(.minutes(5)))
struct RDMAPeerKilledTests {
    @Test("A peer process killed mid-transfer ends the pending receive and later sends with a transport error")
    func killedMidTransfer() async throws {
        let child = try ChildServer.start()
        defer { child.kill() }
        try await withRuntime { runtime in
            let (echoed, receiveCode, sendCode) = try await runtime.run(on: 0) { core -> (Int, TransportError.Code?, TransportError.Code?) in
                let client = try await RDMADialer(configuration: scaledConfiguration())
                    .dial(SocketAddress(host: RDMATestEnvironment.address, port: child.port)!, on: core)
                var echoed = 0
                for i in 0..<50 {
                    let bytes = payload(sender: 5, sequence: i, size: 2_000)
                    try await client.send(Message(bytes))
                    let back = try await client.recv()
                    if back.bytes == bytes { echoed += 1 }
                }
                // A receive is pending (nothing was sent) when the server dies.
                let pending = Task { () -> (any Error)? in
                    _ = core
                    return await caught { _ = try await client.recv() }
                }
                _ = try await waitUntil(core) { client.receiving }
                child.kill()
                let receiveError = await pending.value
                let sendError = await caught {
                    for i in 0..<200 { try await client.send(Message(payload(sender: 5, sequence: i, size: 100))) }
                }
                await client.close()
                return (echoed, (receiveError as? TransportError)?.code, (sendError as? TransportError)?.code)
            }
            #expect(echoed == 50)
            #expect(receiveCode == .closed || receiveCode == .connectionReset)
            #expect(sendCode != nil)
        }
    }
}
