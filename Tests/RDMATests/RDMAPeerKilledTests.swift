#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
@testable import NetRDMA
import NetTransport
import Synchronization
import NetTestSupport
import Testing

@Suite("RDMA peer killed on rxe0", .enabled(if: RDMATestEnvironment.inGuest, "needs the soft-RoCE guest (scripts/rdma-tests)"),
       .timeLimit(.minutes(5)))
struct RDMAPeerKilledTests {
    @Test("A peer process killed mid-transfer ends the pending receive and later sends with a transport error")
    func killedMidTransfer() async throws {
        let child = try ChildProcess.server()
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
