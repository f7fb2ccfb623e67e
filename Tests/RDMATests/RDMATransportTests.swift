#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
@testable import NetRDMA
import NetTransport
import NetTestSupport
import Testing

/// Transport tests on a real soft-RoCE device: they run in the guest of scripts/rdma-vm
/// (`scripts/rdma-tests`), and are skipped on a host without RDMA.
@Suite("RDMA transport on rxe0", .enabled(if: RDMATestEnvironment.inGuest, "needs the soft-RoCE guest (scripts/rdma-tests)"),
       .timeLimit(.minutes(5)))
struct RDMATransportTests {
    @Test("Messages of every size up to the maximum arrive whole and in order, both ways")
    func ordering() async throws {
        try await withRuntime { runtime in
            let (ok, count) = try await runtime.run(on: 0) { core -> (Bool, Int) in
                let (client, server, listener) = try await connectedPair(on: core)
                let sizes = [1, 8, 100, 128, 129, 1_000, 4_096, 30_000, 65_536]
                let payloads = (0..<600).map { payload(sender: 0, sequence: $0, size: sizes[$0 % sizes.count]) }
                let sending = Task {
                    _ = core
                    for bytes in payloads { try await client.send(Message(bytes)) }
                }
                // The echoes are taken as they come: a client that stopped receiving would
                // (rightly) stop the server's sends once its credits ran out.
                let echoes = Task {
                    _ = core
                    var ok = true
                    for expected in payloads {
                        let back = try await client.recv()
                        ok = ok && back.bytes == expected
                    }
                    return ok
                }
                var ok = true
                var count = 0
                for expected in payloads {
                    let message = try await server.recv()
                    ok = ok && message.bytes == expected
                    // Echo it back from the receive buffer itself.
                    try await server.send(message)
                    count += 1
                }
                try await sending.value
                ok = try await echoes.value && ok
                await client.close()
                await server.close()
                await listener.close()
                return (ok, count)
            }
            #expect(ok)
            #expect(count == 600)
        }
    }

    @Test("Concurrent senders: every message whole, each sender's in order")
    func concurrentSenders() async throws {
        try await withRuntime { runtime in
            let (ok, received, delayed) = try await runtime.run(on: 0) { core -> (Bool, Int, Int) in
                let (client, server, listener) = try await connectedPair(on: core)
                let senders = 16, perSender = 200
                let receiving = Task {
                    _ = core
                    var next = [Int](repeating: 0, count: senders)
                    var ok = true
                    for _ in 0..<(senders * perSender) {
                        let message = try await server.recv()
                        let (sender, sequence) = header(message)
                        ok = ok && sender < senders && sequence == next[sender]
                            && message.bytes == payload(sender: sender, sequence: sequence, size: 64 + sender * 100)
                        if sender < senders { next[sender] += 1 }
                    }
                    return (ok, next.reduce(0, +))
                }
                var tasks: [Task<Void, any Error>] = []
                for sender in 0..<senders {
                    tasks.append(Task {
                        _ = core
                        for sequence in 0..<perSender {
                            try await client.send(Message(payload(sender: sender, sequence: sequence, size: 64 + sender * 100)))
                        }
                    })
                }
                for task in tasks { try await task.value }
                let (ok, received) = try await receiving.value
                let delayed = client.statistics.sendsDelayed
                await client.close()
                await server.close()
                await listener.close()
                return (ok, received, delayed)
            }
            #expect(ok)
            #expect(received == 3_200)
            // 16 senders against 64 credits: some had to wait for credits to come back.
            #expect(delayed > 0)
        }
    }

    @Test("Credits run out while the receiver holds its messages, and come back when it releases them")
    func creditsExhaustedAndRefilled() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: Int] in
                let small = scaledConfiguration { $0.receiveDepth = 8; $0.creditReturnBatch = 2 }
                let (client, server, listener) = try await connectedPair(on: core, client: small, server: small)
                let total = 50
                let sending = Task {
                    _ = core
                    for i in 0..<total { try await client.send(Message(payload(sender: 1, sequence: i, size: 1_000))) }
                }
                // The server takes nothing: the client stops with only the reserved credits left.
                let stalled = try await waitUntil(core) { server.queuedReceives == 8 && client.queuedSends == 1 }
                let creditsWhenStalled = client.credits
                var held: [Message] = []
                var inOrder = 0
                for i in 0..<total {
                    let message = try await server.recv()
                    if header(message).sequence == i { inOrder += 1 }
                    held.append(message)
                    if held.count == 8 { held.removeAll() }  // release a whole window at once
                }
                try await sending.value
                let result = [
                    "stalled": stalled ? 1 : 0, "creditsWhenStalled": creditsWhenStalled, "inOrder": inOrder,
                    "delayed": client.statistics.sendsDelayed, "creditMessages": server.statistics.creditMessagesSent,
                    "reposted": server.statistics.receivesReposted,
                ]
                await client.close()
                await server.close()
                await listener.close()
                return result
            }
            #expect(result["stalled"] == 1)
            #expect(result["creditsWhenStalled"] == 2)   // the reserve (one credit-return batch)
            #expect(result["inOrder"] == 50)
            #expect((result["delayed"] ?? 0) > 0)
            #expect((result["creditMessages"] ?? 0) > 0)
            #expect((result["reposted"] ?? 0) >= 40)
        }
    }

    @Test("Zero copy: a received message lies in its registered receive buffer, reposted by the end of the turn it is released in; a registered send is not copied")
    func zeroCopy() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: Bool] in
                let (client, server, listener) = try await connectedPair(on: core)
                var buffer = client.allocateBuffer(capacity: 10_000)
                buffer.append(contentsOf: payload(sender: 2, sequence: 0, size: 10_000))
                let message = buffer.freeze()
                let registered = client.bufferPool.isRegistered(message)
                try await client.send(message)
                let received = try await server.recv()
                let inSlot = server.slots.contains { $0.base == received.baseAddress.map { UnsafeMutableRawPointer(mutating: $0) } }
                let result = [
                    "registered": registered,
                    "zeroCopySend": client.statistics.zeroCopySends == 1 && client.statistics.copiedSends == 0,
                    "sameBytes": received == message,
                    "inReceiveSlot": inSlot,
                    "inSlab": server.bufferPool.isRegistered(received),
                ]
                let repostedBefore = server.statistics.receivesReposted
                _ = consume received
                // Posted again by the end of the turn it was released in (not before the reply a
                // release usually precedes: see docs/RDMA.md, Credits).
                try await core.yieldUntilTurnEnd()
                let reposted = server.statistics.receivesReposted == repostedBefore + 1
                await client.close()
                await server.close()
                await listener.close()
                return result.merging(["repostedOnRelease": reposted]) { $1 }
            }
            #expect(result == ["registered": true, "zeroCopySend": true, "sameBytes": true, "inReceiveSlot": true,
                               "inSlab": true, "repostedOnRelease": true])
        }
    }

    @Test("Buffers from allocateBuffer are registered chunks the core's pool hands out again once released")
    func pooledBuffers() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: Bool] in
                let (client, server, listener) = try await connectedPair(on: core)
                let pool = client.bufferPool
                let before = pool.statistics
                var buffer = client.allocateBuffer(capacity: 3_000)
                buffer.append(contentsOf: payload(sender: 3, sequence: 0, size: 3_000))
                let message = buffer.freeze()
                let base = message.baseAddress
                let registered = pool.isRegistered(message)
                _ = consume message
                let again = client.allocateBuffer(capacity: 3_000)
                let result = [
                    "registered": registered,
                    "sameChunk": again.storage.base == base.map { UnsafeMutableRawPointer(mutating: $0) },
                    "reused": pool.statistics.reused == before.reused + 1,
                    "samePoolForServer": server.bufferPool === pool,
                ]
                _ = consume again
                await client.close()
                await server.close()
                await listener.close()
                return result
            }
            #expect(result == ["registered": true, "sameChunk": true, "reused": true, "samePoolForServer": true])
        }
    }

    @Test("The peer's close ends a pending receive with .closed, after the messages sent before it")
    func peerCloses() async throws {
        try await withRuntime { runtime in
            let (first, code) = try await runtime.run(on: 0) { core -> ([UInt8], TransportError.Code?) in
                let (client, server, listener) = try await connectedPair(on: core)
                try await client.send(Message([1, 2, 3]))
                await client.close()
                let first = try await server.recv().bytes
                let error = await caught { _ = try await server.recv() }
                await server.close()
                await listener.close()
                return (first, (error as? TransportError)?.code)
            }
            #expect(first == [1, 2, 3])
            #expect(code == .closed)
        }
    }

    @Test("A peer that disconnects mid-transfer fails the sends waiting for credits with .connectionReset")
    func peerDisconnectsMidTransfer() async throws {
        try await withRuntime { runtime in
            let (waiting, code, later) = try await runtime.run(on: 0) { core -> (Bool, TransportError.Code?, TransportError.Code?) in
                let small = scaledConfiguration { $0.receiveDepth = 4; $0.creditReturnBatch = 2 }
                let (client, server, listener) = try await connectedPair(on: core, client: small, server: small)
                // The server sends more than the client (which never receives) has room for.
                let sending = Task {
                    _ = core
                    for i in 0..<20 { try await server.send(Message(payload(sender: 3, sequence: i, size: 500))) }
                }
                let waiting = try await waitUntil(core) { server.queuedSends == 1 }
                await client.close()
                let error = await caught { try await sending.value }
                let later = await caught { try await server.send(Message([9])) }
                await server.close()
                await listener.close()
                return (waiting, (error as? TransportError)?.code, (later as? TransportError)?.code)
            }
            #expect(waiting)
            #expect(code == .connectionReset)
            #expect(later == .connectionReset)
        }
    }

    @Test("A peer that sends past its credits is a protocol violation: the receiver closes")
    func creditOverrun() async throws {
        try await withRuntime { runtime in
            let (code, delivered) = try await runtime.run(on: 0) { core -> (TransportError.Code?, Int) in
                let small = scaledConfiguration { $0.receiveDepth = 4; $0.creditReturnBatch = 2 }
                let (client, server, listener) = try await connectedPair(on: core, client: small, server: small)
                client.ignoresCreditsForTesting = true
                for i in 0..<5 { try await client.send(Message(payload(sender: 4, sequence: i, size: 100))) }
                _ = try await waitUntil(core) { !server.isOpen }
                var delivered = 0
                var code: TransportError.Code?
                while code == nil {
                    do {
                        _ = try await server.recv()
                        delivered += 1
                    } catch {
                        code = (error as? TransportError)?.code
                    }
                }
                await client.close()
                await listener.close()
                return (code, delivered)
            }
            #expect(code == .protocolViolation)
            #expect(delivered == 0)
        }
    }

    @Test("A connect request with a bad handshake is rejected; the listener then accepts a good one")
    func badHandshakeRejected() async throws {
        try await withRuntime { runtime in
            let (code, rejected, works) = try await runtime.run(on: 0) { core -> (TransportError.Code?, Int, Bool) in
                let listener = try RDMAListener.bind(SocketAddress(host: RDMATestEnvironment.address, port: 0)!, on: core,
                                                     configuration: scaledConfiguration())
                let accepted = Box<RDMATransport>()
                let accepting = Task {
                    _ = core
                    accepted.value = try await listener.accept()
                }
                var bad = RDMADialer(configuration: scaledConfiguration())
                bad.handshakeForTesting = Array("not a handshake, just bytes".utf8)
                let error = await caught { _ = try await bad.dial(listener.localAddress, on: core) }
                let client = try await RDMADialer(configuration: scaledConfiguration()).dial(listener.localAddress, on: core)
                try await accepting.value
                try await client.send(Message([42]))
                let works = try await accepted.value!.recv().bytes == [42] // '!': accept returned
                await client.close()
                await accepted.value?.close()
                await listener.close()
                return ((error as? TransportError)?.code, listener.rejected, works)
            }
            #expect(code == .connectFailed)
            #expect(rejected == 1)
            #expect(works)
        }
    }

    @Test("A dial to a port nobody listens on fails with .connectFailed")
    func refused() async throws {
        try await withRuntime { runtime in
            let code = try await runtime.run(on: 0) { core -> TransportError.Code? in
                let error = await caught {
                    _ = try await RDMADialer(configuration: scaledConfiguration())
                        .dial(SocketAddress(host: RDMATestEnvironment.address, port: 1)!, on: core)
                }
                return (error as? TransportError)?.code
            }
            #expect(code == .connectFailed)
        }
    }
}

/// Bad input at the API and connections across cores, on rxe0.
@Suite("RDMA transport limits on rxe0", .enabled(if: RDMATestEnvironment.inGuest, "needs the soft-RoCE guest (scripts/rdma-tests)"),
       .timeLimit(.minutes(5)))
struct RDMATransportLimitTests {
    @Test("Empty and oversized messages and a second receive are refused; the connection stays usable")
    func badCalls() async throws {
        try await withRuntime { runtime in
            let (codes, stillWorks) = try await runtime.run(on: 0) { core -> ([TransportError.Code?], Bool) in
                let (client, server, listener) = try await connectedPair(on: core)
                var codes: [TransportError.Code?] = []
                codes.append((await caught { try await client.send(Message()) } as? TransportError)?.code)
                let tooLarge = Message([UInt8](repeating: 7, count: client.configuration.maximumMessageSize + 1))
                codes.append((await caught { try await client.send(tooLarge) } as? TransportError)?.code)
                let first = Task {
                    _ = core
                    return try await server.recv().bytes
                }
                _ = try await waitUntil(core) { server.receiving }
                codes.append((await caught { _ = try await server.recv() } as? TransportError)?.code)
                try await client.send(Message([5, 6]))
                let stillWorks = try await first.value == [5, 6] && client.isOpen && server.isOpen
                await client.close()
                await server.close()
                await listener.close()
                return (codes, stillWorks)
            }
            #expect(codes == [.malformedFrame, .frameTooLarge, .concurrentReceive])
            #expect(stillWorks)
        }
    }

    @Test("Busy polling (off by default) gets the replies of a ping-pong without waiting for an event")
    func busyPolling() async throws {
        try await withRuntime { runtime in
            let (ok, polled, polledByDefault) = try await runtime.run(on: 0) { core -> (Bool, Int, Int) in
                let polling = scaledConfiguration { $0.busyPolling = RDMATestEnvironment.scaled(.milliseconds(200)) }
                let (client, server, listener) = try await connectedPair(on: core, client: polling, server: scaledConfiguration())
                let echo = Task {
                    _ = core
                    for _ in 0..<200 { try await server.send(try await server.recv()) }
                }
                var ok = true
                for i in 0..<200 {
                    let bytes = payload(sender: 6, sequence: i, size: 64)
                    try await client.send(Message(bytes))
                    let back = try await client.recv()
                    ok = ok && back.bytes == bytes
                }
                try await echo.value
                let result = (ok, client.statistics.busyPolledReceives, server.statistics.busyPolledReceives)
                await client.close()
                await server.close()
                await listener.close()
                return result
            }
            #expect(ok)
            #expect(polled > 100)
            #expect(polledByDefault == 0)
        }
    }

    @Test("A receive that busy polls lets its core serve the ring: an I/O completion is delivered, and the message its task sends is polled")
    func busyPollingServesTheRing() async throws {
        try await withRuntime { runtime in
            let (received, polled) = try await runtime.run(on: 0) { core -> (Bool, Int) in
                // A window far longer than the test: were the ring not served while the receive
                // polls, the completion below would be delivered only once the window ended, and
                // the message would come by a completion event instead of by a poll.
                let polling = scaledConfiguration { $0.busyPolling = .seconds(20) }
                let (client, server, listener) = try await connectedPair(on: core, client: polling, server: scaledConfiguration())
                // A byte already waiting on a socket: its receive completes at once, but only the
                // core's ring (io_uring's completion queue, epoll's ready list) delivers that.
                var ends: [Int32] = [0, 0]
                #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &ends) == 0)
                var one: UInt8 = 1
                #expect(write(ends[1], &one, 1) == 1)
                let bytes = payload(sender: 7, sequence: 0, size: 64)
                let sender = Task {
                    _ = core
                    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
                    defer { buffer.deallocate() }
                    let n = try await core.recv(ends[0], into: buffer, cancellable: false)
                    try await server.send(Message(bytes))
                    return n
                }
                let back = try await client.recv()
                let read = try await sender.value
                let result = (back.bytes == bytes && read == 1, client.statistics.busyPolledReceives)
                try await core.close(ends[0])
                try await core.close(ends[1])
                await client.close()
                await server.close()
                await listener.close()
                return result
            }
            #expect(received)
            #expect(polled == 1)
        }
    }

    @Test("A client on core 1 and a server on core 0 (two per-core contexts on one device) exchange messages")
    func acrossCores() async throws {
        try await withRuntime(cores: 2) { runtime in
            let address = try await runtime.run(on: 0) { core -> SocketAddress in
                // Bound here, accepted below by a task of the same core.
                let listener = try RDMAListener.bind(SocketAddress(host: RDMATestEnvironment.address, port: 0)!, on: core,
                                                     configuration: scaledConfiguration())
                let held = try core.local(ListenerHolder.self) { ListenerHolder() }
                held.listener = listener
                return listener.localAddress
            }
            let server = try runtime.spawn(on: 0) { core -> Int in
                let listener = try core.local(ListenerHolder.self) { ListenerHolder() }.listener!
                let connection = try await listener.accept()
                var echoed = 0
                for _ in 0..<300 {
                    try await connection.send(try await connection.recv())
                    echoed += 1
                }
                _ = await caught { _ = try await connection.recv() }  // until the client closes
                await connection.close()
                await listener.close()
                return echoed
            }
            let ok = try await runtime.run(on: 1) { core -> Bool in
                let client = try await RDMADialer(configuration: scaledConfiguration()).dial(address, on: core)
                var ok = true
                for i in 0..<300 {
                    let bytes = payload(sender: 9, sequence: i, size: 1 + i * 97 % 5_000)
                    try await client.send(Message(bytes))
                    let back = try await client.recv()
                    ok = ok && back.bytes == bytes
                }
                await client.close()
                return ok
            }
            #expect(ok)
            #expect(try await server.value == 300)
        }
    }
}

/// Keeps a listener on its core between two calls of a test.
final class ListenerHolder {
    var listener: RDMAListener?
}
