#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
@testable import NetTCP
import NetTransport
import NetTestSupport
import Testing

@Suite("TCP framing", .timeLimit(.minutes(1)))
struct TCPFramingTests {
    @Test("Frames written in random pieces arrive whole and in order", arguments: [1, 2, 3, 42, 1_000])
    func randomPieces(seed: UInt64) async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let ok = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, transport) = try await rawPeer(on: core, listener: listener)
                var random = SeededGenerator(seed: seed)
                // Sizes from 1 byte to past a receive chunk, so frames straddle chunk ends.
                let payloads = (0..<300).map { i in
                    payload(sender: 0, sequence: i, size: [1, 8, 100, 4_000, 70_000].randomElement(using: &random)!)
                }
                let stream = payloads.flatMap(frame)
                var pieces: [[UInt8]] = []
                var offset = 0
                while offset < stream.count {
                    let size = Int.random(in: 1...9_000, using: &random)
                    pieces.append(Array(stream[offset..<min(offset + size, stream.count)]))
                    offset += size
                }
                async let written: Void = {
                    for piece in pieces { try await rawWrite(core, peer, piece) }
                }()
                var all = true
                for expected in payloads {
                    let message = try await transport.recv()
                    all = all && message.bytes == expected
                }
                try await written
                try await core.close(peer)
                await transport.close()
                await listener.close()
                return all
            }
            #expect(ok)
        }
    }

    @Test("Messages kept by the application stay intact while later frames, larger than a chunk among them, are received", arguments: [false, true])
    func keptMessagesStayIntact(handler: Bool) async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let (kept, expected) = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, transport) = try await rawPeer(on: core, listener: listener)
                // Small frames read together with the start of a frame larger than a 64 KiB
                // chunk, and small ones after it: the small ones' bytes live in the chunk.
                let payloads = (0..<40).map { i in payload(sender: 1, sequence: i, size: i % 4 == 3 ? 200_000 : 100) }
                async let written: Void = rawWrite(core, peer, payloads.flatMap(frame))
                var kept: [Message] = []
                if handler {
                    let done = CoreWaitQueue(core: core)
                    try transport.startReceiving { event in
                        if case .message(let message) = event { kept.append(message) }
                        if kept.count == payloads.count { done.signalAll() }
                    }
                    while kept.count < payloads.count { try await done.wait() }
                } else {
                    for _ in payloads { kept.append(try await transport.recv()) }
                }
                try await written
                try await core.close(peer)
                await transport.close()
                await listener.close()
                return (kept.map(\.bytes), payloads)
            }
            #expect(kept.count == expected.count)
            for (index, (got, want)) in zip(kept, expected).enumerated() where got != want {
                Issue.record("message \(index) (\(want.count) bytes) changed after it was received")
            }
        }
    }

    @Test("A frame of a 1 MiB payload and a small header is received into pooled storage, reused frame after frame")
    func megabytePayloadWithHeaderIsPooled() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let (ok, before, after) = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, transport) = try await rawPeer(on: core, listener: listener)
                let pool = try TCPBufferPool.on(core).allocator
                // An RPC frame of a 1 MiB payload: its 16-byte header and the payload.
                let payloads = (0..<3).map { payload(sender: 2, sequence: $0, size: 1024 * 1024 + 16) }
                async let written: Void = {
                    for payload in payloads { try await rawWrite(core, peer, frame(payload)) }
                }()
                var all = true
                let before = pool.statistics
                for expected in payloads {
                    let message = try await transport.recv()  // dropped before the next: its storage is free again
                    all = all && message.bytes == expected
                }
                let after = pool.statistics
                try await written
                try await core.close(peer)
                await transport.close()
                await listener.close()
                return (all, before, after)
            }
            #expect(ok)
            #expect(after.unpooled == before.unpooled)
            #expect(after.reused - before.reused >= 2)
        }
    }

    @Test("Many frames in one write are split out of one read, each inside the pooled chunk")
    func manyFramesOneWriteZeroCopy() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let (ok, sameChunk, chunkSized) = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, transport) = try await rawPeer(on: core, listener: listener)
                let payloads = (0..<200).map { payload(sender: 1, sequence: $0, size: 40) }
                try await rawWrite(core, peer, payloads.flatMap(frame))
                var frames: [Message] = []
                for _ in payloads { frames.append(try await transport.recv()) }
                let ok = zip(frames, payloads).allSatisfy { $0.bytes == $1 }
                // The first frames came in one read: they lie in one chunk of the pool's 64 KiB class.
                let first = frames[0].backingStorage!
                let sameChunk = frames.prefix(10).allSatisfy { $0.isBacked(by: first) }
                let chunkSized = first.capacity == transport.configuration.receiveChunkSize
                try await core.close(peer)
                await transport.close()
                await listener.close()
                return (ok, sameChunk, chunkSized)
            }
            #expect(ok)
            #expect(sameChunk)
            #expect(chunkSized)
        }
    }

    @Test("1 MiB and 16 MiB frames round trip", arguments: [1 << 20, 16 << 20])
    func largeFrames(size: Int) async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let ok = try await runtime.run(on: 0) { core in
                let (client, server, listener) = try await connectedPair(on: core, group: group)
                var buffer = client.allocateBuffer(capacity: size)
                // `size` bytes: the buffer may hold more (its storage is a whole size class).
                buffer.write { raw in
                    for i in 0..<size { raw[i] = UInt8(truncatingIfNeeded: i &* 131 &+ i >> 12) }
                    return size
                }
                let message = buffer.freeze()
                // A task that uses `core` is isolated to it, so it may share the core's
                // non-Sendable connections.
                let sent = Task {
                    _ = core
                    try await client.send(message)
                }
                let received = try await server.recv()
                try await sent.value
                // Echo it back the other way, the receive posted first this time.
                let back = Task {
                    _ = core
                    try await server.send(received)
                }
                let returned = try await client.recv()
                try await back.value
                let ok = received == message && returned == message && received.count == size
                await client.close()
                await server.close()
                await listener.close()
                return ok
            }
            #expect(ok)
        }
    }

    @Test("Frames of mixed sizes sent faster than a slow reader takes them arrive whole and in order, through short writes")
    func shortWritesUnderBackpressure() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let (ok, count, writerNeeded) = try await runtime.run(on: 0) { core in
                let (client, server, listener) = try await connectedPair(on: core, group: group)
                // A small send buffer: the end-of-turn write is cut short, anywhere in a frame
                // (header included), and the writer task must carry on from there. (A receive
                // buffer smaller than loopback's 64 KiB segments would stall TCP itself.)
                try Socket.setOption(client.fd, SOL_SOCKET, SO_SNDBUF, 4096)
                let frames = 3_000
                func size(_ i: Int) -> Int { 1 + (i &* 7919) % 5_000 }
                let sender = try core.spawn { () async throws -> Void in
                    for i in 0..<frames {
                        try await client.send(Message(payload(sender: 0, sequence: i, size: size(i))))
                    }
                }
                // No wait needed: the sender queues up to `maximumQueuedBytes` (4 MiB) before this
                // task's first receive lets anything be read, far more than the socket takes.
                var ok = true
                var count = 0
                for i in 0..<frames {
                    let message = try await server.recv()
                    ok = ok && message.bytes == payload(sender: 0, sequence: i, size: size(i))
                    count += 1
                }
                try await sender.value
                let writerNeeded = client.writerStarted
                await client.close()
                await server.close()
                await listener.close()
                return (ok, count, writerNeeded)
            }
            #expect(ok)
            #expect(count == 3_000)
            #expect(writerNeeded)
        }
    }

    @Test("600 gathered frames (head and body) sent in one turn leave within sendmsg's 1,024-vector limit and arrive whole")
    func manyGatheredFramesOneTurn() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let (ok, open) = try await runtime.run(on: 0) { core in
                let (client, server, listener) = try await connectedPair(on: core, group: group)
                let frames = 600
                let receiver = try core.spawn { () async throws -> Bool in
                    var ok = true
                    for i in 0..<frames {
                        let message = try await server.recv()
                        ok = ok && message.bytes == payload(sender: 1, sequence: i, size: 8) + payload(sender: 2, sequence: i, size: 40)
                    }
                    return ok
                }
                // No suspension between the sends: all 600 are queued before the turn ends.
                for i in 0..<frames {
                    try await client.send(Message(payload(sender: 1, sequence: i, size: 8)), Message(payload(sender: 2, sequence: i, size: 40)))
                }
                let ok = try await receiver.value
                let open = client.isOpen
                await client.close()
                await server.close()
                await listener.close()
                return (ok, open)
            }
            #expect(ok)
            #expect(open)
        }
    }

    @Test("100 concurrent senders x 1,000 frames arrive whole, in per-sender order, in fewer writes than frames")
    func concurrentSenders() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let (ok, writes, frames) = try await runtime.run(on: 0) { core in
                let (client, server, listener) = try await connectedPair(on: core, group: group)
                let senders = 100
                let perSender = 1_000
                let received = Task {
                    _ = core
                    var next = [Int](repeating: 0, count: senders)
                    var ok = true
                    for _ in 0..<(senders * perSender) {
                        let message = try await server.recv()
                        let bytes = message.bytes
                        let sender = Int(UInt32(bigEndian: bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
                        let sequence = Int(UInt32(bigEndian: bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 4, as: UInt32.self) }))
                        ok = ok && sequence == next[sender] && bytes == payload(sender: sender, sequence: sequence, size: 24)
                        next[sender] += 1
                    }
                    return ok
                }
                // Tasks that capture `core` inherit its isolation and may share the connection.
                var tasks: [Task<Void, any Error>] = []
                for sender in 0..<senders {
                    let task = Task {
                        _ = core
                        for sequence in 0..<perSender {
                            try await client.send(Message(payload(sender: sender, sequence: sequence, size: 24)))
                        }
                    }
                    tasks.append(task)
                }
                for task in tasks { try await task.value }
                let ok = try await received.value
                let result = (ok, client.writeCount, client.framesSent)
                await client.close()
                await server.close()
                await listener.close()
                return result
            }
            #expect(ok)
            #expect(frames == 100_000)
            #expect(writes < frames)
        }
    }
}

