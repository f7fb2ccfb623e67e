import NetRuntime
@testable import NetRDMA
import NetTransport
import NetTestSupport
import Testing

/// `startReceiving` and `enqueue` over a real soft-RoCE device: messages handed over from the
/// completion queue's poll, answers that never wait.
@Suite("RDMA receive handler on rxe0", .enabled(if: RDMATestEnvironment.inGuest, "needs the soft-RoCE guest (scripts/rdma-tests)"),
       .timeLimit(.minutes(5)))
struct RDMAReceiveHandlerTests {
    /// What a handler saw, on the core.
    final class Record {
        var sequences: [Int] = []
        var sizes: [Int] = []
        var ends: [TransportError.Code] = []
        var refused: [TransportError.Code] = []
    }

    @Test("a handler gets every message in order (those that came before it first, rendezvous ones too), answers past the credits with enqueue, and hears a clean end once")
    func handlerEchoes() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: Int] in
                let small = scaledConfiguration { $0.receiveDepth = 8; $0.creditReturnBatch = 2 }
                let (client, server, listener) = try await connectedPair(on: core, client: small, server: small)
                let count = 40
                // Two messages above the 64 KiB receive buffer go by rendezvous (the peer READs them).
                let size = { (i: Int) in i == 10 || i == 25 ? 100_000 : 200 }
                for i in 0..<3 { #expect(try client.trySend(Message(payload(sender: 5, sequence: i, size: size(i))))) }
                let arrivedFirst = try await waitUntil(core) { server.queuedReceives == 3 }
                let record = Record()
                try server.startReceiving { event in
                    switch event {
                    case .message(let message):
                        record.sequences.append(header(message).sequence)
                        record.sizes.append(message.count)
                        do throws(TransportError) { try server.enqueue(message) } catch { record.refused.append(error.code) }
                    case .ended(let error):
                        record.ends.append(error.code)
                    }
                }
                var recvRefused = 0
                do { _ = try await server.recv() } catch let error as TransportError { recvRefused = error.code == .concurrentReceive ? 1 : 0 }
                var secondRefused = 0
                do throws(TransportError) { try server.startReceiving { _ in } } catch { secondRefused = error.code == .concurrentReceive ? 1 : 0 }
                let sender = Task {
                    _ = core
                    for i in 3..<count { try await client.send(Message(payload(sender: 5, sequence: i, size: size(i)))) }
                }
                // The client reads nothing until the server's answers outrun its credits: they queue.
                let queued = try await waitUntil(core) { server.queuedSends > 0 }
                var inOrder = 0
                for i in 0..<count {
                    let reply = try await client.recv()
                    if header(reply).sequence == i && reply.count == size(i) && reply.bytes == payload(sender: 5, sequence: i, size: size(i)) { inOrder += 1 }
                }
                try await sender.value
                await client.close()
                _ = try await waitUntil(core) { !record.ends.isEmpty }
                // Ending it again (ours, after the peer's) must not reach the handler twice; an end
                // is handed over at the end of a turn, and a ring no-op lets a turn end.
                await server.close()
                try await core.nop()
                await listener.close()
                return [
                    "arrivedFirst": arrivedFirst ? 1 : 0, "recvRefused": recvRefused, "secondRefused": secondRefused,
                    "queued": queued ? 1 : 0, "inOrder": inOrder,
                    "handlerInOrder": record.sequences == Array(0..<count) && record.sizes == (0..<count).map(size) ? 1 : 0,
                    "refused": record.refused.count, "ends": record.ends.count, "closed": record.ends.first == .closed ? 1 : 0,
                    "delayed": server.statistics.sendsDelayed, "rendezvous": server.statistics.rendezvousReceives,
                ]
            }
            #expect(result["arrivedFirst"] == 1)
            #expect(result["recvRefused"] == 1)
            #expect(result["secondRefused"] == 1)
            #expect(result["queued"] == 1)
            #expect(result["inOrder"] == 40)
            #expect(result["handlerInOrder"] == 1)
            #expect(result["refused"] == 0)
            #expect(result["ends"] == 1)
            #expect(result["closed"] == 1)
            #expect((result["delayed"] ?? 0) > 0)
            #expect(result["rendezvous"] == 2)
        }
    }

    @Test("enqueue queues past the credits up to maximumQueuedSends, then refuses and queues nothing; the queued go in order")
    func enqueueIsBounded() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: Int] in
                let server = scaledConfiguration { $0.receiveDepth = 8; $0.creditReturnBatch = 2 }
                let client = scaledConfiguration { $0.maximumQueuedSends = 2 }
                let (sending, receiving, listener) = try await connectedPair(on: core, client: client, server: server)
                var accepted = 0
                var refused = 0
                for i in 0..<12 {
                    do throws(TransportError) {
                        try sending.enqueue(Message(payload(sender: 6, sequence: i, size: 300)))
                        accepted += 1
                    } catch {
                        if error.code == .resourceExhausted { refused += 1 }
                    }
                }
                let queued = sending.queuedSends
                let arrived = try await waitUntil(core) { receiving.queuedReceives == 8 }
                let record = Record()
                try receiving.startReceiving { event in
                    if case .message(let message) = event { record.sequences.append(header(message).sequence) }
                }
                let all = try await waitUntil(core) { record.sequences.count == 10 }
                await sending.close()
                await receiving.close()
                await listener.close()
                return [
                    "accepted": accepted, "refused": refused, "queued": queued, "arrived": arrived ? 1 : 0,
                    "all": all ? 1 : 0, "inOrder": record.sequences == Array(0..<10) ? 1 : 0,
                ]
            }
            // 8 data credits, then 2 queued (maximumQueuedSends); the last 2 are refused.
            #expect(result["accepted"] == 10)
            #expect(result["refused"] == 2)
            #expect(result["queued"] == 2)
            #expect(result["arrived"] == 1)
            #expect(result["all"] == 1)
            #expect(result["inOrder"] == 1)
        }
    }

    @Test("with busy polling, the idle core polls the completion queue for a handler (no completion event), until the connection ends")
    func busyPollingHandler() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: Int] in
                let polling = scaledConfiguration { $0.busyPolling = RDMATestEnvironment.scaled(.milliseconds(200)) }
                let (client, server, listener) = try await connectedPair(on: core, client: scaledConfiguration(), server: polling)
                try server.startReceiving { event in
                    if case .message(let message) = event { try? server.enqueue(message) }
                }
                let context = server.context
                let pollingWhileServing = context.idlePollingHandlers
                var ok = true
                for i in 0..<200 {
                    let bytes = payload(sender: 8, sequence: i, size: 64)
                    try await client.send(Message(bytes))
                    let back = try await client.recv()
                    ok = ok && back.bytes == bytes
                }
                let polled = server.statistics.busyPolledReceives
                await client.close()
                let stopped = try await waitUntil(core) { context.idlePollingHandlers == 0 }
                let armed = !server.device.unarmed  // notifications are back on for the core's other connections
                await listener.close()
                return ["ok": ok ? 1 : 0, "pollingWhileServing": pollingWhileServing, "polled": polled, "stopped": stopped ? 1 : 0, "armed": armed ? 1 : 0]
            }
            #expect(result["ok"] == 1)
            #expect(result["pollingWhileServing"] == 1)
            #expect((result["polled"] ?? 0) > 100)
            #expect(result["stopped"] == 1)
            #expect(result["armed"] == 1)
        }
    }

    @Test("a paused handler gets nothing: the messages wait in their buffers, holding the peer's credits; resumed, it gets them in order")
    func pauseHoldsCredits() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: Int] in
                let small = scaledConfiguration { $0.receiveDepth = 8; $0.creditReturnBatch = 2 }
                let (client, server, listener) = try await connectedPair(on: core, client: small, server: small)
                let record = Record()
                try server.startReceiving { event in
                    guard case .message(let message) = event else { return }
                    record.sequences.append(header(message).sequence)
                    if record.sequences.count == 1 { server.pauseReceiving() }
                }
                var posted = 0
                while try client.trySend(Message(payload(sender: 9, sequence: posted, size: 300))) { posted += 1 }
                let waiting = try await waitUntil(core) { server.queuedReceives == posted - 1 }
                let whilePaused = record.sequences.count
                let stillRefused = try !client.trySend(Message(payload(sender: 9, sequence: posted, size: 300)))
                server.resumeReceiving()
                let all = try await waitUntil(core) { record.sequences.count == posted }
                // The buffers go back, and with them the credits.
                let sendsAgain = try await waitUntil(core) { (try? client.trySend(Message(payload(sender: 9, sequence: posted, size: 300)))) == true }
                let last = try await waitUntil(core) { record.sequences.count == posted + 1 }
                await client.close()
                await server.close()
                await listener.close()
                return [
                    "posted": posted, "waiting": waiting ? 1 : 0, "whilePaused": whilePaused, "stillRefused": stillRefused ? 1 : 0,
                    "all": all ? 1 : 0, "sendsAgain": sendsAgain ? 1 : 0, "last": last ? 1 : 0,
                    "inOrder": record.sequences == Array(0...posted) ? 1 : 0,
                ]
            }
            #expect(result["posted"] == 8)
            #expect(result["waiting"] == 1)
            #expect(result["whilePaused"] == 1)
            #expect(result["stillRefused"] == 1)
            #expect(result["all"] == 1)
            #expect(result["sendsAgain"] == 1)
            #expect(result["last"] == 1)
            #expect(result["inOrder"] == 1)
        }
    }

    @Test("a peer that sends past its credits ends a handler's connection with protocolViolation, once")
    func violationEndsHandler() async throws {
        try await withRuntime { runtime in
            let (ends, open) = try await runtime.run(on: 0) { core -> ([TransportError.Code], Bool) in
                let small = scaledConfiguration { $0.receiveDepth = 4; $0.creditReturnBatch = 2 }
                let (client, server, listener) = try await connectedPair(on: core, client: small, server: small)
                let record = Record()
                // A handler that holds what it gets: the peer's credits are not returned.
                var held: [Message] = []
                try server.startReceiving { event in
                    switch event {
                    case .message(let message): held.append(message)
                    case .ended(let error): record.ends.append(error.code)
                    }
                }
                client.ignoresCreditsForTesting = true
                for i in 0..<5 { try await client.send(Message(payload(sender: 7, sequence: i, size: 100))) }
                _ = try await waitUntil(core) { !record.ends.isEmpty }
                // Releasing what it held (reposts) and a turn's end must not bring a second end.
                held.removeAll()
                try await core.nop()
                await client.close()
                await listener.close()
                return (record.ends, server.isOpen)
            }
            #expect(ends == [.protocolViolation])
            #expect(!open)
        }
    }
}
