import NetRuntime
@testable import NetRDMA
import NetTransport
import NetTestSupport
import Testing

/// `trySend` and `tryRecv` over a real soft-RoCE device: the synchronous fast paths take what
/// needs no wait and refuse the rest without side effects.
@Suite("RDMA fast paths on rxe0", .enabled(if: RDMATestEnvironment.inGuest, "needs the soft-RoCE guest (scripts/rdma-tests)"),
       .timeLimit(.minutes(5)))
struct RDMAFastPathTests {
    @Test("trySend posts while credits last, then refuses and queues nothing; tryRecv takes what arrived, in order")
    func fastPaths() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: Int] in
                let small = scaledConfiguration { $0.receiveDepth = 8; $0.creditReturnBatch = 2 }
                let (client, server, listener) = try await connectedPair(on: core, client: small, server: small)
                let emptyBefore = try server.tryRecv() == nil
                var posted = 0
                while try client.trySend(Message(payload(sender: 4, sequence: posted, size: 200))) { posted += 1 }
                let creditsWhenRefused = client.credits
                let queuedWhenRefused = client.queuedSends
                // The server's completions arrive through its core; then tryRecv takes them all.
                let arrived = try await waitUntil(core) { server.queuedReceives == posted }
                var inOrder = 0
                while let message = try server.tryRecv() {
                    if header(message).sequence == inOrder && message.count == 200 { inOrder += 1 }
                }
                // A receive in progress refuses tryRecv; a message then ends it.
                let pending = Task { _ = core; return try await server.recv().count }
                let receiving = try await waitUntil(core) { server.receiving }
                var refused = 0
                do throws(TransportError) { _ = try server.tryRecv() } catch { refused = error.code == .concurrentReceive ? 1 : 0 }
                try await client.send(Message(payload(sender: 4, sequence: posted, size: 300)))
                let last = try await pending.value
                await client.close()
                var closed = 0
                do throws(TransportError) { _ = try client.trySend(Message([1])) } catch { closed = error.code == .closed ? 1 : 0 }
                await server.close()
                await listener.close()
                return [
                    "emptyBefore": emptyBefore ? 1 : 0, "posted": posted, "creditsWhenRefused": creditsWhenRefused,
                    "queuedWhenRefused": queuedWhenRefused, "arrived": arrived ? 1 : 0, "inOrder": inOrder,
                    "receiving": receiving ? 1 : 0, "refused": refused, "last": last, "closed": closed,
                ]
            }
            #expect(result["emptyBefore"] == 1)
            // 8 data credits (receiveDepth), and 2 more kept for credit returns (docs/RDMA.md, "Credits").
            #expect(result["posted"] == 8)
            #expect(result["creditsWhenRefused"] == 2)
            #expect(result["queuedWhenRefused"] == 0)
            #expect(result["arrived"] == 1)
            #expect(result["inOrder"] == 8)
            #expect(result["receiving"] == 1)
            #expect(result["refused"] == 1)
            #expect(result["last"] == 300)
            #expect(result["closed"] == 1)
        }
    }
}
