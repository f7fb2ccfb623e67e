#if canImport(Glibc)
import Glibc
#endif
import CRDMA
import NetPool
import NetRuntime
@testable import NetRDMA
import NetTransport
import NetTestSupport
import Testing

/// The failure model, on rxe0 (in the guest of scripts/rdma-vm): queue-pair errors, fatal
/// asynchronous events, a peer killed during a large message, reconnection, the memlock limit.
@Suite("RDMA failures on rxe0", .enabled(if: RDMATestEnvironment.inGuest, "needs the soft-RoCE guest (scripts/rdma-tests)"),
       .timeLimit(.minutes(5)))
struct RDMAFailureTests {
    @Test("A queue pair gone to the error state fails the pending receive and later sends, and closes the transport")
    func queuePairError() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> (TransportError.Code?, TransportError.Code?, Bool) in
                let (client, server, listener) = try await connectedPair(on: core)
                let pending = Task { () -> (any Error)? in
                    _ = core
                    return await caught { _ = try await server.recv() }
                }
                _ = try await waitUntil(core) { server.receiving }
                // As a fatal error would: every posted work request is flushed with an error.
                _ = crdma_qp_to_error(server.queuePair)
                let receiveError = await pending.value
                let sendError = await caught { try await server.send(Message([1])) }
                let open = server.isOpen
                await client.close()
                await server.close()
                await listener.close()
                return ((receiveError as? TransportError)?.code, (sendError as? TransportError)?.code, open)
            }
            #expect(result.0 == .connectionReset)
            #expect(result.1 == .connectionReset)
            #expect(result.2 == false)
        }
    }

    @Test("IBV_EVENT_QP_FATAL reaches the connection owning that queue pair, and only it",
          arguments: [IBV_EVENT_QP_FATAL.rawValue, IBV_EVENT_QP_ACCESS_ERR.rawValue])
    func queuePairFatal(event: UInt32) async throws {
        try await withRuntime(cores: 2) { runtime in
            // The connection lives on core 1; the event is read on any core (here: dispatched
            // from outside every core, as the async-event reader does).
            let result = try await runtime.run(on: 1) { core -> (TransportError.Code?, String, Bool) in
                let (client, server, listener) = try await connectedPair(on: core)
                let (other, otherServer, otherListener) = try await connectedPair(on: core)
                let pending = Task { () -> (any Error)? in
                    _ = core
                    return await caught { _ = try await server.recv() }
                }
                _ = try await waitUntil(core) { server.receiving }
                let device = UInt(bitPattern: server.device.verbs)
                let queuePair = server.queuePair.pointee.qp_num
                Task.detached { AsyncEvents.dispatch(device: device, type: ibv_event_type(event), queuePair: queuePair) }
                let error = await pending.value as? TransportError
                try await other.send(Message([4, 2]))
                let otherWorks = try await otherServer.recv().bytes == [4, 2]
                for connection in [client, server, other, otherServer] { await connection.close() }
                await listener.close()
                await otherListener.close()
                return (error?.code, error?.message ?? "", otherWorks)
            }
            #expect(result.0 == .connectionReset)
            #expect(result.1.contains("queue pair failed"))
            #expect(result.2)
        }
    }

    @Test("IBV_EVENT_DEVICE_FATAL fails every connection on the device, on every core (in a child process: it ends them all)")
    func deviceFatal() throws {
        let child = try ChildProcess.spawn([ChildProcess.helper, "devicefatal", RDMATestEnvironment.address])
        let (output, status) = child.finish()
        #expect(status == 0)
        let lines = output.split(separator: "\n").filter { $0.hasPrefix("FAILED") }.sorted()
        #expect(lines == ["FAILED 0 connectionReset,connectionReset", "FAILED 1 connectionReset,connectionReset"])
    }

    @Test("A peer process killed while a large message is read ends the receiver's calls with a transport error")
    func peerKilledDuringLargeMessages() async throws {
        let child = try ChildProcess.server()
        defer { child.kill() }
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> (Int, TransportError.Code?) in
                let client = try await RDMADialer(configuration: scaledConfiguration())
                    .dial(SocketAddress(host: RDMATestEnvironment.address, port: child.port)!, on: core)
                let bytes = payload(sender: 6, sequence: 0, size: 1 << 20)
                try await client.send(Message(bytes))
                let echoed = try await client.recv().bytes == bytes ? 1 : 0
                // Large messages in both directions when the server dies.
                let flood = Task { () -> (any Error)? in
                    _ = core
                    return await caught {
                        while true {
                            try await client.send(Message(bytes))
                            _ = try await client.recv()
                        }
                    }
                }
                _ = try await waitUntil(core) { client.statistics.rendezvousSends >= 3 }
                child.kill()
                let error = await flood.value as? TransportError
                await client.close()
                return (echoed, error?.code)
            }
            #expect(result.0 == 1)
            #expect(result.1 == .connectionReset || result.1 == .closed)
        }
    }

    @Test("After its connection fails, the connection manager dials the peer again")
    func reconnects() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> (Int, Bool, Bool) in
                let listener = try RDMAListener.bind(SocketAddress(host: RDMATestEnvironment.address, port: 0)!, on: core,
                                                     configuration: scaledConfiguration())
                let peer = PeerAddress.socket(listener.localAddress)
                let accepted = Box<[RDMATransport]>()
                accepted.value = []
                let accepting = Task {
                    _ = core
                    while let connection = try? await listener.accept() { accepted.value?.append(connection) }
                }
                let manager = ConnectionManager<PooledRDMA>(core: core) { address, core in
                    PooledRDMA(try await RDMADialer(configuration: scaledConfiguration()).dial(address, on: core))
                }
                let first = try await manager.connection(to: peer)
                try await first.transport.send(Message([1]))
                _ = try await waitUntil(core) { accepted.value?.count == 1 }
                // The server's side fails (as on a fatal event): the client learns it from the
                // disconnect, and the manager no longer hands the connection out.
                accepted.value?[0].fail(TransportError(.connectionReset, "injected"))
                let noticed = try await waitUntil(core) { !first.isUsable }
                let second = try await manager.connection(to: peer)
                try await second.transport.send(Message([2]))
                let works = try await waitUntil(core) { accepted.value?.count == 2 }
                let dials = manager.dialCount
                await second.transport.close()
                await listener.close()
                accepting.cancel()
                for connection in accepted.value ?? [] { await connection.close() }
                return (dials, noticed, works && second !== first)
            }
            #expect(result.1)
            #expect(result.0 == 2)
            #expect(result.2)
        }
    }

    @Test("Without CAP_IPC_LOCK and under a low `ulimit -l`, registering memory fails with an error that names RLIMIT_MEMLOCK")
    func memlockShortfall() async throws {
        // Root ignores the limit, so the child drops CAP_IPC_LOCK; then it lowers its limit.
        let script = "ulimit -l 64 && exec \"$0\" memlock \"$1\""
        let limited = try ChildProcess.spawn([
            "/usr/bin/setpriv", "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", "--",
            "/bin/sh", "-c", script, ChildProcess.helper, RDMATestEnvironment.address,
        ])
        let (limitedOutput, limitedStatus) = limited.finish()
        #expect(limitedStatus == 0)
        #expect(limitedOutput.contains("ERROR resourceExhausted"))
        #expect(limitedOutput.contains("RLIMIT_MEMLOCK"))
        // The same program with the limit it had connects: the limit was the cause.
        let unlimited = try ChildProcess.spawn([ChildProcess.helper, "memlock", RDMATestEnvironment.address])
        let (output, status) = unlimited.finish()
        #expect(status == 0)
        #expect(output.hasPrefix("OK"))
    }
}

/// An RDMA connection as the pool sees it.
final class PooledRDMA: PooledConnection {
    let transport: RDMATransport
    init(_ transport: RDMATransport) { self.transport = transport }
    var isUsable: Bool { transport.isOpen }
    func close() async { await transport.close() }
}
