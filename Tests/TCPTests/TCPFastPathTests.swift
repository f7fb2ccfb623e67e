#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
@testable import NetTCP
import NetTransport
import NetTestSupport
import Testing

/// `tryRecv` and `trySend`: the synchronous fast paths a receive loop and a sender take before
/// they await.
@Suite("TCP fast paths", .timeLimit(.minutes(1)))
struct TCPFastPathTests {
    @Test("tryRecv takes the frames one read brought in, in order, and leaves a partial frame to recv")
    func tryRecvTakesBufferedFrames() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let (beforeAny, viaTry, inOrder, pendingRefused, last) = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, transport) = try await rawPeer(on: core, listener: listener)
                let beforeAny = try transport.tryRecv() == nil
                let payloads = (0..<5).map { payload(sender: 2, sequence: $0, size: 100) }
                // Four whole frames and the first half of a fifth, in one write: one read takes them.
                let fifth = frame(payloads[4])
                try await rawWrite(core, peer, payloads.prefix(4).flatMap(frame) + fifth.prefix(50))
                var received = [try await transport.recv()]
                var viaTry = 0
                while let message = try transport.tryRecv() {
                    received.append(message)
                    viaTry += 1
                }
                let inOrder = received.map(\.bytes) == Array(payloads.prefix(4))
                // A receive waits for the rest of the fifth; tryRecv meanwhile is refused.
                let pending = Task { _ = core; return try await transport.recv().bytes }
                while !transport.receiving { await Task.yield() }
                var pendingRefused = false
                do throws(TransportError) { _ = try transport.tryRecv() } catch { pendingRefused = error.code == .concurrentReceive }
                try await rawWrite(core, peer, Array(fifth.dropFirst(50)))
                let last = try await pending.value == payloads[4]
                try await core.close(peer)
                await transport.close()
                await listener.close()
                return (beforeAny, viaTry, inOrder, pendingRefused, last)
            }
            #expect(beforeAny)
            #expect(viaTry == 3)
            #expect(inOrder)
            #expect(pendingRefused)
            #expect(last)
        }
    }

    @Test("tryRecv leaves a bad length to recv, which reports it; after the end it throws why")
    func tryRecvLeavesErrorsToRecv() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime, configuration: .defaults { $0.maximumFrameSize = 1_000 })
            let (first, skipped, recvCode, afterCode) = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, transport) = try await rawPeer(on: core, listener: listener)
                // A good frame, then a header announcing 5,000 bytes (over the 1,000-byte limit).
                try await rawWrite(core, peer, frame(Array("fine".utf8)) + frame([UInt8](repeating: 1, count: 5_000)).prefix(10))
                let first = String(try await transport.recv()) == "fine"
                let skipped = try transport.tryRecv() == nil
                var recvCode: TransportError.Code?
                do { _ = try await transport.recv() } catch { recvCode = (error as? TransportError)?.code }
                var afterCode: TransportError.Code?
                do throws(TransportError) { _ = try transport.tryRecv() } catch { afterCode = error.code }
                try await core.close(peer)
                await transport.close()
                await listener.close()
                return (first, skipped, recvCode, afterCode)
            }
            #expect(first)
            #expect(skipped)
            #expect(recvCode == .frameTooLarge)
            #expect(afterCode == .frameTooLarge)
        }
    }

    @Test("trySend queues until the queue passes its bound, then refuses and queues nothing; what it queued arrives")
    func trySendRespectsTheQueueBound() async throws {
        let limit = 64 * 1024
        try await withRuntime { runtime in
            let group = try bindGroup(runtime, configuration: .defaults { $0.maximumQueuedBytes = limit; $0.maximumFrameSize = 200_000 })
            let (accepted, refusedWithQueue, emptyCode, largeCode, arrived, closedCode) = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, transport) = try await rawPeer(on: core, listener: listener)
                let frames = (0..<3).map { Message(payload(sender: 3, sequence: $0, size: 32 * 1024)) }
                // No await in between: the queue is written only at the end of the core's turn.
                var accepted = 0
                for message in frames {
                    if try transport.trySend(message) { accepted += 1 }
                }
                let refusedWithQueue = transport.queuedBytes
                var emptyCode: TransportError.Code?
                do throws(TransportError) { _ = try transport.trySend(Message()) } catch { emptyCode = error.code }
                var largeCode: TransportError.Code?
                do throws(TransportError) { _ = try transport.trySend(Message([UInt8](repeating: 0, count: 300_000))) } catch { largeCode = error.code }
                // The queued frames reach the peer whole.
                let expected = frames.prefix(accepted).flatMap { frame($0.bytes) }
                var got: [UInt8] = []
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 1)
                defer { buffer.deallocate() }
                while got.count < expected.count {
                    let n = try await core.recv(peer, into: buffer)
                    if n == 0 { break }
                    got += UnsafeRawBufferPointer(rebasing: buffer[..<n])
                }
                await transport.close()
                var closedCode: TransportError.Code?
                do throws(TransportError) { _ = try transport.trySend(frames[0]) } catch { closedCode = error.code }
                try await core.close(peer)
                await listener.close()
                return (accepted, refusedWithQueue, emptyCode, largeCode, got == expected, closedCode)
            }
            // 32 KiB, then 64 KiB (at the bound), then refused: 96 KiB would pass it.
            #expect(accepted == 2)
            #expect(refusedWithQueue == limit)
            #expect(emptyCode == .malformedFrame)
            #expect(largeCode == .frameTooLarge)
            #expect(arrived)
            #expect(closedCode == .closed)
        }
    }

    @Test("flush writes what trySend queued at once, before the turn ends; without it the frame waits for the turn's end")
    func flushWritesBeforeTheTurnEnds() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let (beforeFlush, afterFlush, flushedIdle) = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, transport) = try await rawPeer(on: core, listener: listener)
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4_096, alignment: 1)
                defer { buffer.deallocate() }
                // Loopback delivers during the sender's system call: a non-blocking read in the
                // same job sees exactly what has been written so far.
                func readable() -> Int { Glibc.recv(peer, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT)) }
                let sent = payload(sender: 4, sequence: 0, size: 100)
                _ = try transport.trySend(Message(sent))
                let beforeFlush = readable()
                transport.flush()
                let afterFlush = readable() == frame(sent).count
                    && Array(UnsafeRawBufferPointer(rebasing: buffer[..<frame(sent).count])) == frame(sent)
                transport.flush()  // nothing queued: writes nothing, harms nothing
                let flushedIdle = transport.isOpen
                try await core.close(peer)
                await transport.close()
                await listener.close()
                return (beforeFlush, afterFlush, flushedIdle)
            }
            #expect(beforeFlush == -1)
            #expect(afterFlush)
            #expect(flushedIdle)
        }
    }

    @Test("recv(cancellable: false) outlives its task's cancellation: the next frame arrives and the connection stays open; closing the connection ends it")
    func uncancellableRecv() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let (received, openAfter, closedCode) = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, transport) = try await rawPeer(on: core, listener: listener)
                let reader = Task { _ = core; return try await transport.recv(cancellable: false).bytes }
                while !transport.receiving { await Task.yield() }
                reader.cancel()
                try await core.nop()  // a turn later: a cancellable receive would have ended (and closed)
                let sent = payload(sender: 5, sequence: 1, size: 40)
                try await rawWrite(core, peer, frame(sent))
                let received = try await reader.value == sent
                let openAfter = transport.isOpen
                // The reader's way out: the connection's end.
                let second = Task { _ = core; do { _ = try await transport.recv(cancellable: false); return TransportError.Code?.none } catch { return (error as? TransportError)?.code } }
                while !transport.receiving { await Task.yield() }
                await transport.close()
                let closedCode = await second.value
                try await core.close(peer)
                await listener.close()
                return (received, openAfter, closedCode)
            }
            #expect(received)
            #expect(openAfter)
            #expect(closedCode == .closed)
        }
    }

    @Test("A cancelled recv loses nothing and leaves the connection open: cancelled before a frame, inside a small one and inside one larger than a chunk, the next recv gets each frame whole")
    func cancelledRecvLosesNothing() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let results = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, transport) = try await rawPeer(on: core, listener: listener)
                let small = payload(sender: 3, sequence: 1, size: 40)
                let large = payload(sender: 3, sequence: 2, size: 3 * TCPConfiguration().receiveChunkSize)
                var results: [Bool] = []
                // (frame, bytes of it written before the receive is cancelled)
                for (sent, early) in [(small, 0), (small, 24), (large, large.count / 2)] {
                    let bytes = frame(sent)
                    if early > 0 { try await rawWrite(core, peer, Array(bytes[..<early])) }
                    let reader = Task { _ = core; return await caught { _ = try await transport.recv() } }
                    while !transport.receiving { await Task.yield() }
                    // The receive has taken what was written: the cancel comes inside the frame
                    // (a small frame's bytes in the chunk; the large frame in its own storage).
                    func taken() -> Bool {
                        early == 0 || transport.largeFrame != nil || transport.readEnd - transport.readStart >= early
                    }
                    while !taken() { try await core.nop() }
                    reader.cancel()
                    let error = await reader.value
                    results.append(error is CancellationError && transport.isOpen)
                    try await rawWrite(core, peer, Array(bytes[early...]))
                    results.append(try await transport.recv().bytes == sent)
                }
                await transport.close()
                try await core.close(peer)
                await listener.close()
                return results
            }
            #expect(results == Array(repeating: true, count: 6))
        }
    }
}
