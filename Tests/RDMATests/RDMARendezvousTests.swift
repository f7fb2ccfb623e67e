import NetRuntime
@testable import NetRDMA
import NetTransport
import NetTestSupport
import Testing

/// Large messages by rendezvous, on rxe0 (in the guest of scripts/rdma-vm).
@Suite("RDMA rendezvous on rxe0", .enabled(if: RDMATestEnvironment.inGuest, "needs the soft-RoCE guest (scripts/rdma-tests)"),
       .timeLimit(.minutes(5)))
struct RDMARendezvousTests {
    @Test("Messages at, just above and far above the eager size arrive whole and in order, both ways, without a copy")
    func sizes() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: Int] in
                let (client, server, listener) = try await connectedPair(on: core)
                let eager = client.eagerLimit
                // Small and large interleaved: a large message keeps its place while it is read.
                let sizes = [eager, eager + 1, 100, eager * 3, 1, 1 << 20, eager - 1, 3 << 20, 128]
                let payloads = (0..<(sizes.count * 4)).map { payload(sender: 2, sequence: $0, size: sizes[$0 % sizes.count]) }
                let sending = Task {
                    _ = core
                    for bytes in payloads {
                        // Built in registered memory, as an application that wants zero copy does.
                        var buffer = client.allocateBuffer(capacity: bytes.count)
                        buffer.append(contentsOf: bytes)
                        try await client.send(buffer.freeze())
                    }
                }
                let echoes = Task {
                    _ = core
                    var whole = 0
                    for expected in payloads {
                        let back = try await client.recv()
                        if back.bytes == expected { whole += 1 }
                    }
                    return whole
                }
                var received = 0
                for expected in payloads {
                    let message = try await server.recv()
                    if message.bytes == expected { received += 1 }
                    try await server.send(message) // back from the memory it was read into
                }
                try await sending.value
                let echoed = try await echoes.value
                // Every lent message is released once the peer has read it.
                let released = try await waitUntil(core) { client.lent.isEmpty && server.lent.isEmpty }
                let large = payloads.filter { $0.count > eager }.count
                let stats = (client.statistics, server.statistics)
                await client.close()
                await server.close()
                await listener.close()
                return ["received": received, "echoed": echoed, "released": released ? 1 : 0, "large": large,
                        "clientRendezvous": stats.0.rendezvousSends, "serverRendezvousIn": stats.1.rendezvousReceives,
                        "serverRendezvousOut": stats.1.rendezvousSends, "clientCopies": stats.0.copiedSends,
                        "serverCopies": stats.1.copiedSends, "count": payloads.count]
            }
            #expect(result["received"] == result["count"])
            #expect(result["echoed"] == result["count"])
            #expect(result["released"] == 1)
            #expect(result["clientRendezvous"] == result["large"])
            #expect(result["serverRendezvousIn"] == result["large"])
            #expect(result["serverRendezvousOut"] == result["large"])
            // Built in registered memory (client) and read into registered memory (server): no
            // message was copied to be sent, eager or large.
            #expect(result["clientCopies"] == 0)
            #expect(result["serverCopies"] == 0)
        }
    }

    @Test("A 1 MiB body with a small head (an RPC frame of a 1 MiB payload) is read into a slab chunk, not memory registered for it alone")
    func megabyteWithHeadInTheSlab() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: Int] in
                let (client, server, listener) = try await connectedPair(on: core)
                let head = payload(sender: 3, sequence: 0, size: 16)
                let body = payload(sender: 3, sequence: 1, size: 1 << 20)
                // Both in registered memory, as the RPC layer builds them.
                var headBuffer = client.allocateBuffer(capacity: head.count)
                headBuffer.append(contentsOf: head)
                var buffer = client.allocateBuffer(capacity: body.count)
                buffer.append(contentsOf: body)
                // One device context serves both ends (one core): its counters are theirs together.
                let registrationsBefore = server.registrationStatistics.registrations
                let refusedBefore = server.device.slab.statistics.refused
                try await client.send(headBuffer.freeze(), buffer.freeze())
                let message = try await server.recv()
                let inSlab = message.baseAddress.flatMap { server.device.slab.region(holding: $0, count: message.count) } != nil
                let result = ["whole": message.bytes == head + body ? 1 : 0, "inSlab": inSlab ? 1 : 0,
                              "refused": server.device.slab.statistics.refused - refusedBefore,
                              "registrations": server.registrationStatistics.registrations - registrationsBefore,
                              "rendezvous": server.statistics.rendezvousReceives]
                await client.close()
                await server.close()
                await listener.close()
                return result
            }
            #expect(result["whole"] == 1)
            #expect(result["rendezvous"] == 1)
            #expect(result["inSlab"] == 1)
            #expect(result["refused"] == 0)
            #expect(result["registrations"] == 0)
        }
    }

    @Test("send(head, body) gathers both without a copy: one SEND of two segments, or a rendezvous of two segments")
    func gathered() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: Int] in
                let (client, server, listener) = try await connectedPair(on: core)
                func registered(_ bytes: [UInt8]) -> Message {
                    var buffer = client.allocateBuffer(capacity: bytes.count)
                    buffer.append(contentsOf: bytes)
                    return buffer.freeze()
                }
                let head = payload(sender: 7, sequence: 0, size: 24)
                var whole = 0
                // Eager (two SGEs), inline (both parts fit), rendezvous (two segments read into one buffer).
                for size in [4_000, 50, 500_000] {
                    let body = payload(sender: 7, sequence: size, size: size)
                    try await client.send(registered(head), registered(body))
                    if try await server.recv().bytes == head + body { whole += 1 }
                }
                let copiesBefore = client.statistics.copiedSends
                // A part in plain memory: copied, both parts, into one registered buffer.
                let body = payload(sender: 8, sequence: 1, size: 3_000)
                try await client.send(Message(head), registered(body))
                let copiedWhole = try await server.recv().bytes == head + body
                let stats = client.statistics
                await client.close()
                await server.close()
                await listener.close()
                return ["whole": whole, "copiesBefore": copiesBefore, "copies": stats.copiedSends,
                        "copiedWhole": copiedWhole ? 1 : 0, "rendezvous": stats.rendezvousSends, "inline": stats.inlineSends]
            }
            #expect(result["whole"] == 3)
            #expect(result["copiesBefore"] == 0)
            #expect(result["copies"] == 1)
            #expect(result["copiedWhole"] == 1)
            #expect(result["rendezvous"] == 1)
            #expect(result["inline"] == 1)
        }
    }

    @Test("Large messages the receiver holds stop the sender by credits, as eager ones do, and flow again when released")
    func backpressure() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: Int] in
                let small = scaledConfiguration { $0.receiveDepth = 8; $0.creditReturnBatch = 2 }
                let (client, server, listener) = try await connectedPair(on: core, client: small, server: small)
                let total = 30
                let sending = Task {
                    _ = core
                    for i in 0..<total { try await client.send(Message(payload(sender: 11, sequence: i, size: 100_000))) }
                }
                // Nothing taken: the client stops once the server holds its 8 data credits' worth.
                let stalled = try await waitUntil(core) { server.queuedReceives == 8 && client.queuedSends == 1 }
                var held: [Message] = []
                var inOrder = 0
                for i in 0..<total {
                    let message = try await server.recv()
                    if header(message).sequence == i && message.count == 100_000 { inOrder += 1 }
                    held.append(message)
                    if held.count == 8 { held.removeAll() }
                }
                try await sending.value
                await client.close()
                await server.close()
                await listener.close()
                return ["stalled": stalled ? 1 : 0, "inOrder": inOrder, "rendezvous": client.statistics.rendezvousSends]
            }
            #expect(result["stalled"] == 1)
            #expect(result["inOrder"] == 30)
            #expect(result["rendezvous"] == 30)
        }
    }

    @Test("Forged rendezvous messages are protocol violations that close the connection: malformed, above the maximum, an unknown token",
          arguments: ["malformed", "aboveMaximum", "unknownToken"])
    func forged(kind: String) async throws {
        try await withRuntime { runtime in
            let code = try await runtime.run(on: 0) { core -> TransportError.Code? in
                let (client, server, listener) = try await connectedPair(on: core)
                let request = RendezvousRequest(token: 1, segments: [
                    .init(address: 0x1000, length: server.configuration.maximumMessageSize + 1, remoteKey: 1)])
                var bytes = [UInt8](repeating: 0, count: request.size)
                _ = bytes.withUnsafeMutableBytes { request.encode(into: $0.baseAddress!) }
                switch kind {
                case "malformed": try client.sendControlForTesting(.rendezvous, Array(bytes.prefix(21)))
                case "aboveMaximum": try client.sendControlForTesting(.rendezvous, bytes)
                default: try client.sendControlForTesting(.rendezvousDone, [0, 0, 0, 42])
                }
                let error = await caught { _ = try await server.recv() }
                await client.close()
                await server.close()
                await listener.close()
                return (error as? TransportError)?.code
            }
            #expect(code == .protocolViolation)
        }
    }

    @Test("A peer that breaks the protocol again and again costs no registered memory: the receive buffer that showed each violation goes back to the slab")
    func violationsLeakNoBuffers() async throws {
        try await withRuntime { runtime in
            let inUse = try await runtime.run(on: 0) { core -> [Int] in
                var inUse: [Int] = []
                for _ in 0..<3 {
                    let (client, server, listener) = try await connectedPair(on: core)
                    try client.sendControlForTesting(.rendezvousDone, [0, 0, 0, 42])  // a done for nothing lent
                    _ = await caught { _ = try await server.recv() }
                    await client.close()
                    await server.close()
                    await listener.close()
                    _ = try await waitUntil(core) { client.tornDown && server.tornDown }
                    inUse.append(server.device.slab.statistics.inUse)
                }
                return inUse
            }
            #expect(inUse.count == 3)
            #expect(Set(inUse).count == 1, "chunks in use after each violation: \(inUse)")
        }
    }

    @Test("A large message from a foreign buffer is registered once, however often it is sent (registration cache)")
    func registrationCache() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: Int] in
                let (client, server, listener) = try await connectedPair(on: core)
                let bytes = payload(sender: 3, sequence: 0, size: 300_000)
                let foreign = Message(bytes) // plain memory, not the slab
                let before = client.registrationStatistics
                var whole = 0
                for _ in 0..<5 {
                    try await client.send(foreign)
                    if try await server.recv().bytes == bytes { whole += 1 }
                }
                let after = client.registrationStatistics
                let stats = client.statistics
                await client.close()
                await server.close()
                await listener.close()
                return ["whole": whole, "registrations": after.registrations - before.registrations,
                        "hits": after.hits - before.hits, "zeroCopy": stats.zeroCopySends, "copied": stats.copiedSends]
            }
            #expect(result["whole"] == 5)
            #expect(result["registrations"] == 1)
            #expect(result["hits"] == 4)
            #expect(result["zeroCopy"] == 5)
            #expect(result["copied"] == 0)
        }
    }

    @Test("The maximum is negotiated: a message above the peer's maximum, or above a receive buffer without READ, is refused before sending")
    func negotiatedMaximum() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: TransportError.Code?] in
                let small = scaledConfiguration { $0.maximumMessageSize = 200_000 }
                let (client, server, listener) = try await connectedPair(on: core, server: small)
                let above = await caught { try await client.send(Message([UInt8](repeating: 1, count: 200_001))) }
                try await client.send(Message([UInt8](repeating: 2, count: 200_000)))
                let atMaximum = try await server.recv().count == 200_000
                let noRead = scaledConfiguration { $0.readDepth = 0 }
                let (client2, server2, listener2) = try await connectedPair(on: core, client: noRead)
                let aboveEager = await caught { try await client2.send(Message([UInt8](repeating: 3, count: client2.eagerLimit + 1))) }
                let stillOpen = client.isOpen && client2.isOpen
                for connection in [client, server, client2, server2] { await connection.close() }
                await listener.close()
                await listener2.close()
                return ["above": (above as? TransportError)?.code, "aboveEager": (aboveEager as? TransportError)?.code,
                        "atMaximum": atMaximum ? .closed : nil, "open": stillOpen ? .closed : nil]
            }
            #expect(result["above"] == .frameTooLarge)
            #expect(result["aboveEager"] == .frameTooLarge)
            #expect(result["atMaximum"] == .closed) // the message at the maximum arrived
            #expect(result["open"] == .closed)      // refusals did not end the connections
        }
    }

    @Test("A graceful close waits until the peer has read the large messages sent just before it")
    func closeDrainsLargeMessages() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> (Int, Int) in
                let (client, server, listener) = try await connectedPair(on: core)
                let payloads = (0..<3).map { payload(sender: 4, sequence: $0, size: 2 << 20) }
                for bytes in payloads { try await client.send(Message(bytes)) }
                await client.close() // returns once the server has read them (or closeTimeout)
                var whole = 0
                for expected in payloads {
                    let message = try? await server.recv()
                    if message?.bytes == expected { whole += 1 }
                }
                let after = await caught { _ = try await server.recv() }
                await server.close()
                await listener.close()
                return (whole, (after as? TransportError)?.code == .closed ? 1 : 0)
            }
            #expect(result.0 == 3)
            #expect(result.1 == 1)
        }
    }
}
