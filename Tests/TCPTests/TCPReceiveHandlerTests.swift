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
    /// What a handler saw, on the core.
    final class Record {
        var messages: [[UInt8]] = []
        var ends: [TransportError.Code] = []
        var refused: [TransportError.Code] = []
    }

    @Test("a handler gets every frame in order, those sent before it first; it answers with enqueue; its end comes once")
    func handlerEchoes() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let (echoed, refused, ends, recvRefused, secondRefused) = try await runtime.run(on: 0) { core in
                let (client, server, listener) = try await connectedPair(on: core, group: group)
                let payloads = (0..<6).map { payload(sender: 1, sequence: $0, size: 50 + $0 * 100) }
                for p in payloads.prefix(3) { try await client.send(Message(p)) }
                let record = Record()
                try server.startReceiving { event in
                    switch event {
                    case .message(let message):
                        record.messages.append(message.bytes)
                        do throws(TransportError) { try server.enqueue(message) } catch { record.refused.append(error.code) }
                    case .ended(let error):
                        record.ends.append(error.code)
                    }
                }
                var recvRefused: TransportError.Code?
                do { _ = try await server.recv() } catch let error as TransportError { recvRefused = error.code }
                var secondRefused: TransportError.Code?
                do throws(TransportError) { try server.startReceiving { _ in } } catch { secondRefused = error.code }
                for p in payloads.dropFirst(3) { try await client.send(Message(p)) }
                var echoed: [[UInt8]] = []
                for _ in payloads { echoed.append(try await client.recv().bytes) }
                await client.close()
                let deadline = Deadline.now + .seconds(10)
                while record.ends.isEmpty && !deadline.hasPassed { try await core.sleep(for: .milliseconds(1)) }
                try await core.sleep(for: .milliseconds(20))  // a second end would come now
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
                let record = Record()
                try server.startReceiving { event in
                    switch event {
                    case .message(let message): record.messages.append(message.bytes)
                    case .ended(let error): record.ends.append(error.code)
                    }
                }
                try await rawWrite(core, peer, frame([1, 2, 3]) + [0, 0, 0x13, 0x88])  // then 5,000 bytes announced
                let deadline = Deadline.now + .seconds(10)
                while record.ends.isEmpty && !deadline.hasPassed { try await core.sleep(for: .milliseconds(1)) }
                try await core.close(peer)
                await listener.close()
                return (record.messages, record.ends)
            }
            #expect(messages == [[1, 2, 3]])
            #expect(ends == [.frameTooLarge])
        }
    }

    @Test("a paused handler reads nothing more; resumed, it gets the frames in order; closing ends the pause")
    func pauseAndResume() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let (whilePaused, after, ends) = try await runtime.run(on: 0) { core in
                let (client, server, listener) = try await connectedPair(on: core, group: group)
                let record = Record()
                try server.startReceiving { event in
                    switch event {
                    case .message(let message):
                        record.messages.append(message.bytes)
                        if record.messages.count == 1 { server.pauseReceiving() }
                    case .ended(let error):
                        record.ends.append(error.code)
                    }
                }
                let payloads = (0..<5).map { payload(sender: 3, sequence: $0, size: 100) }
                try await client.send(Message(payloads[0]))
                let deadline = Deadline.now + .seconds(10)
                while record.messages.isEmpty && !deadline.hasPassed { try await core.sleep(for: .milliseconds(1)) }
                for p in payloads.dropFirst() { try await client.send(Message(p)) }
                try await core.sleep(for: .milliseconds(50))  // frames that arrive now stay unread
                let whilePaused = record.messages.count
                server.resumeReceiving()
                while record.messages.count < 5 && !deadline.hasPassed { try await core.sleep(for: .milliseconds(1)) }
                let after = record.messages == payloads
                server.pauseReceiving()
                await server.close()  // ends the pause: the handler hears the end
                while record.ends.isEmpty && !deadline.hasPassed { try await core.sleep(for: .milliseconds(1)) }
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
