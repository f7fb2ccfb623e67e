#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
@testable import NetTCP
import NetTransport
import NetTestSupport
import Testing

/// `startReceiving` and `enqueue` over TCP: a server that answers from a handler, never waiting.
@Suite("TCP receive handler", .timeLimit(.minutes(1)))
struct TCPReceiveHandlerTests {
    /// What a handler saw, on the core; a task waits on it for the handler's next call.
    final class Record {
        var messages: [[UInt8]] = []
        var ends: [TransportError.Code] = []
        var refused: [TransportError.Code] = []
        let changed: CoreWaitQueue
        init(core: Core) { changed = CoreWaitQueue(core: core) }

        /// Notes `event` and wakes the waiting task.
        func note(_ event: ReceiveEvent) {
            switch event {
            case .message(let message): messages.append(message.bytes)
            case .ended(let error): ends.append(error.code)
            }
            changed.signalAll()
        }

        /// Waits, handler call by handler call, until `condition` holds; false past a bound
        /// (not a pace: the handler's calls end each wait).
        func wait(until condition: () -> Bool) async -> Bool {
            let deadline = Deadline.now + .seconds(10)
            while !condition() {
                do { try await changed.wait(deadline: deadline) } catch { return condition() }
            }
            return true
        }
    }

    @Test("a handler gets every frame in order, those sent before it first; it answers with enqueue; its end comes once")
    func handlerEchoes() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let (echoed, refused, ends, recvRefused, secondRefused) = try await runtime.run(on: 0) { core in
                let (client, server, listener) = try await connectedPair(on: core, group: group)
                let payloads = (0..<6).map { payload(sender: 1, sequence: $0, size: 50 + $0 * 100) }
                for p in payloads.prefix(3) { try await client.send(Message(p)) }
                let record = Record(core: core)
                try server.startReceiving { event in
                    if case .message(let message) = event {
                        do throws(TransportError) { try server.enqueue(message) } catch { record.refused.append(error.code) }
                    }
                    record.note(event)
                }
                var recvRefused: TransportError.Code?
                do { _ = try await server.recv() } catch let error as TransportError { recvRefused = error.code }
                var secondRefused: TransportError.Code?
                do throws(TransportError) { try server.startReceiving { _ in } } catch { secondRefused = error.code }
                for p in payloads.dropFirst(3) { try await client.send(Message(p)) }
                var echoed: [[UInt8]] = []
                for _ in payloads { echoed.append(try await client.recv().bytes) }
                await client.close()
                _ = await record.wait { !record.ends.isEmpty }
                // Ending it again (ours, after the peer's) must not reach the handler twice.
                await server.close()
                try await core.nop()
                #expect(!server.isOpen)
                await listener.close()
                return (echoed == payloads && record.messages == payloads, record.refused, record.ends, recvRefused, secondRefused)
            }
            #expect(echoed)
            #expect(refused.isEmpty)
            #expect(ends == [.closed])
            #expect(recvRefused == .concurrentReceive)
            #expect(secondRefused == .concurrentReceive)
        }
    }

    @Test("a frame over the limit ends a handler's connection with frameTooLarge, once")
    func badFrameEndsHandler() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime, configuration: .defaults { $0.maximumFrameSize = 1_000 })
            let (messages, ends) = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, server) = try await rawPeer(on: core, listener: listener)
                let record = Record(core: core)
                try server.startReceiving { record.note($0) }
                try await rawWrite(core, peer, frame([1, 2, 3]) + [0, 0, 0x13, 0x88])  // then 5,000 bytes announced
                _ = await record.wait { !record.ends.isEmpty }
                try await core.close(peer)
                await listener.close()
                return (record.messages, record.ends)
            }
            #expect(messages == [[1, 2, 3]])
            #expect(ends == [.frameTooLarge])
        }
    }

    @Test("a handler gets frames larger than a chunk and frames split across reads whole; a stream that ends inside a frame ends it with truncatedFrame")
    func largeAndSplitFrames() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime, configuration: .defaults { $0.receiveChunkSize = 256 })
            let (messages, ends) = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, server) = try await rawPeer(on: core, listener: listener)
                let record = Record(core: core)
                try server.startReceiving { record.note($0) }
                let large = payload(sender: 1, sequence: 0, size: 1_000)  // read straight into storage of its own
                let split = frame(payload(sender: 1, sequence: 1, size: 100))
                try await rawWrite(core, peer, frame(large) + split.prefix(54))
                _ = await record.wait { record.messages.count == 1 }
                try await rawWrite(core, peer, Array(split.dropFirst(54)) + frame([7, 8, 9]) + [0, 0, 0, 10, 1, 2, 3, 4])
                _ = await record.wait { record.messages.count == 3 }
                try await core.close(peer)  // inside the last frame: 4 of its 10 bytes came
                _ = await record.wait { !record.ends.isEmpty }
                await listener.close()
                return (record.messages, record.ends)
            }
            #expect(messages == [payload(sender: 1, sequence: 0, size: 1_000), payload(sender: 1, sequence: 1, size: 100), [7, 8, 9]])
            #expect(ends == [.truncatedFrame])
        }
    }

    @Test("a handler's connection silent past idleTimeout ends with timedOut")
    func idleTimeoutEndsHandler() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime, configuration: .defaults { $0.idleTimeout = .milliseconds(100) })
            let (messages, ends) = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, server) = try await rawPeer(on: core, listener: listener)
                let record = Record(core: core)
                try server.startReceiving { record.note($0) }
                try await rawWrite(core, peer, frame([1]))
                _ = await record.wait { !record.ends.isEmpty }
                try await core.close(peer)
                await listener.close()
                return (record.messages, record.ends)
            }
            #expect(messages == [[1]])
            #expect(ends == [.timedOut])
        }
    }

    @Test("a paused handler reads nothing more; resumed, it gets the frames in order; closing ends the pause")
    func pauseAndResume() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let (whilePaused, after, ends) = try await runtime.run(on: 0) { core in
                let (client, server, listener) = try await connectedPair(on: core, group: group)
                let record = Record(core: core)
                try server.startReceiving { event in
                    record.note(event)
                    if record.messages.count == 1 { server.pauseReceiving() }
                }
                let payloads = (0..<5).map { payload(sender: 3, sequence: $0, size: 100) }
                try await client.send(Message(payloads[0]))
                _ = await record.wait { !record.messages.isEmpty }
                for p in payloads.dropFirst() { try await client.send(Message(p)) }
                // The frames are in the server's socket, unread: the paused loop has not taken them.
                try await core.waitReadable(server.fd)
                let whilePaused = record.messages.count
                server.resumeReceiving()
                _ = await record.wait { record.messages.count == 5 }
                let after = record.messages == payloads
                server.pauseReceiving()
                await server.close()  // ends the pause: the handler hears the end
                _ = await record.wait { !record.ends.isEmpty }
                await client.close()
                await listener.close()
                return (whilePaused, after, record.ends)
            }
            #expect(whilePaused == 1)
            #expect(after)
            #expect(ends == [.closed])
        }
    }

    @Test("enqueue queues up to maximumQueuedBytes without waiting, then refuses and queues nothing")
    func enqueueIsBounded() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime, configuration: .defaults { $0.maximumQueuedBytes = 1_000 })
            let (queued, refusal, arrived) = try await runtime.run(on: 0) { core in
                let (client, server, listener) = try await connectedPair(on: core, group: group, configuration: .defaults { $0.maximumQueuedBytes = 1_000 })
                var queued = 0
                var refusal: TransportError.Code?
                // In one turn: nothing is written before its end, so the queue only grows.
                for sequence in 0..<3 {
                    do throws(TransportError) {
                        try client.enqueue(Message(payload(sender: 2, sequence: sequence, size: 400)))
                        queued += 1
                    } catch {
                        refusal = error.code
                    }
                }
                var arrived: [[UInt8]] = []
                for _ in 0..<queued { arrived.append(try await server.recv().bytes) }
                await client.close()
                await server.close()
                await listener.close()
                return (queued, refusal, arrived)
            }
            #expect(queued == 2)
            #expect(refusal == .resourceExhausted)
            #expect(arrived == (0..<2).map { payload(sender: 2, sequence: $0, size: 400) })
        }
    }
}
