#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
@testable import NetTCP
import NetTransport
import NetTestSupport
import Testing

@Suite("TCP bad input", .timeLimit(.minutes(1)))
struct TCPBadInputTests {
    /// Runs `bad` against one accepted connection while a second, healthy connection on the same
    /// listener echoes a frame: the error stays on its connection.
    func check(
        configuration: TCPConfiguration = .init(),
        _ bad: @escaping @Sendable (isolated Core, Int32, TCPTransport) async throws -> (any Error)?
    ) async throws -> (any Error)? {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime, configuration: configuration)
            return try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, transport) = try await rawPeer(on: core, listener: listener)
                let error = try await bad(core, peer, transport)
                #expect(!transport.isOpen)
                // Another connection carries on.
                let (client, server) = try await connectedPair(on: core, listener: listener)
                try await client.send(Message("still fine"))
                #expect(String(try await server.recv()) == "still fine")
                await client.close()
                await server.close()
                // Only if `bad` has not closed it: closing a number twice could close another
                // test's descriptor (tests run in parallel in one process).
                if try core.release(peer) { Socket.closeNow(peer) }
                await listener.close()
                return error
            }
        }
    }

    func code(_ error: (any Error)?) -> TransportError.Code? { (error as? TransportError)?.code }

    @Test("A length prefix over the limit")
    func oversize() async throws {
        let error = try await check(configuration: .defaults { $0.maximumFrameSize = 1024 }) { core, peer, transport in
            try await rawWrite(core, peer, withUnsafeBytes(of: UInt32(1025).bigEndian) { Array($0) } + [1, 2, 3])
            return await caught { _ = try await transport.recv() }
        }
        #expect(code(error) == .frameTooLarge)
    }

    @Test("A truncated frame, then end of stream")
    func truncated() async throws {
        let error = try await check { core, peer, transport in
            try await rawWrite(core, peer, frame([1, 2, 3]) + withUnsafeBytes(of: UInt32(100).bigEndian) { Array($0) } + [9, 9])
            try await core.shutdown(peer, how: Int32(SHUT_WR))
            #expect(try await transport.recv().bytes == [1, 2, 3])
            return await caught { _ = try await transport.recv() }
        }
        #expect(code(error) == .truncatedFrame)
    }

    @Test("A frame larger than a chunk cut by end of stream is truncatedFrame, and the storage it had filled is let go", arguments: [false, true])
    func truncatedLarge(cancelledFirst: Bool) async throws {
        let error = try await check { core, peer, transport in
            let bytes = frame(payload(sender: 4, sequence: 1, size: 3 * TCPConfiguration().receiveChunkSize))
            try await rawWrite(core, peer, Array(bytes[..<(bytes.count / 2)]))
            if cancelledFirst {
                // A receive cancelled inside the frame leaves its progress for the next one.
                let reader = Task { _ = core; return await caught { _ = try await transport.recv() } }
                while transport.largeFrame == nil { try await core.nop() }
                reader.cancel()
                _ = await reader.value
                #expect(transport.largeFrame != nil)
            }
            try await core.shutdown(peer, how: Int32(SHUT_WR))
            let error = await caught { _ = try await transport.recv() }
            #expect(transport.largeFrame == nil)
            return error
        }
        #expect(code(error) == .truncatedFrame)
    }

    @Test("Closing a connection whose cancelled receive left a large frame half read lets its storage go")
    func closeFreesLargeFrame() async throws {
        let error = try await check { core, peer, transport in
            let bytes = frame(payload(sender: 4, sequence: 2, size: 3 * TCPConfiguration().receiveChunkSize))
            try await rawWrite(core, peer, Array(bytes[..<(bytes.count / 2)]))
            let reader = Task { _ = core; return await caught { _ = try await transport.recv() } }
            while transport.largeFrame == nil { try await core.nop() }
            reader.cancel()
            let cancelled = await reader.value
            await transport.close()
            #expect(transport.largeFrame == nil)
            return cancelled
        }
        #expect(error is CancellationError)
    }

    @Test("End of stream between frames is a clean close")
    func cleanClose() async throws {
        let error = try await check { core, peer, transport in
            try await rawWrite(core, peer, frame([7]))
            try await core.shutdown(peer, how: Int32(SHUT_WR))
            #expect(try await transport.recv().bytes == [7])
            return await caught { _ = try await transport.recv() }
        }
        #expect(code(error) == .closed)
    }

    @Test("A zero-length frame")
    func zeroLength() async throws {
        let error = try await check { core, peer, transport in
            try await rawWrite(core, peer, [0, 0, 0, 0])
            return await caught { _ = try await transport.recv() }
        }
        #expect(code(error) == .malformedFrame)
    }

    @Test("Random bytes end in a typed error, never a crash or a hang", arguments: [7, 8, 9] as [UInt64])
    func randomBytes(seed: UInt64) async throws {
        let error = try await check(configuration: .defaults { $0.maximumFrameSize = 64 * 1024 }) { core, peer, transport in
            var random = SeededGenerator(seed: seed)
            try await rawWrite(core, peer, (0..<10_000).map { _ in UInt8.random(in: 0...255, using: &random) })
            try await core.shutdown(peer, how: Int32(SHUT_WR))
            return await caught { while true { _ = try await transport.recv() } }
        }
        #expect(error is TransportError)
    }

    @Test("A reset in the middle of a frame")
    func resetMidFrame() async throws {
        let error = try await check { core, peer, transport in
            try await rawWrite(core, peer, withUnsafeBytes(of: UInt32(1000).bigEndian) { Array($0) } + [1, 2, 3])
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(peer, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            try await core.close(peer)
            return await caught { _ = try await transport.recv() }
        }
        #expect(code(error) == .connectionReset)
    }

    @Test("A peer that connects and never sends is closed by the idle timeout")
    func idle() async throws {
        let error = try await check(configuration: .defaults { $0.idleTimeout = .milliseconds(100) }) { _, _, transport in
            await caught { _ = try await transport.recv() }
        }
        #expect(code(error) == .timedOut)
    }

    @Test("A TCP_USER_TIMEOUT of any size is set, saturated at the kernel's int, without a trap")
    func hugeUserTimeout() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime)
            let set = try await runtime.run(on: 0) { core in
                let configuration = TCPConfiguration.defaults { $0.userTimeout = .seconds(Int64.max / 2) }
                let (client, server, listener) = try await connectedPair(on: core, group: group, configuration: configuration)
                var value: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                let status = getsockopt(client.fd, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &value, &length)
                await client.close()
                await server.close()
                await listener.close()
                return status == 0 ? value : -1
            }
            #expect(set == Int32.max)
        }
    }

    @Test("A peer that never reads: senders wait, the queue stays bounded, other connections carry on")
    func neverReads() async throws {
        let limit = 256 * 1024
        try await withRuntime { runtime in
            let group = try bindGroup(runtime, configuration: .defaults { $0.maximumQueuedBytes = limit })
            let (bounded, queued, cancelled, healthy) = try await runtime.run(on: 0) { core in
                try await Self.floodPeerThatNeverReads(core: core, group: group, limit: limit)
            }
            #expect(bounded)
            #expect(queued <= limit)
            // Senders waiting for room end on cancellation (the writer may be inside its send).
            #expect(cancelled >= 1)
            #expect(healthy)
        }
    }

    static func floodPeerThatNeverReads(
        core: isolated Core, group: TCPListenerGroup, limit: Int
    ) async throws -> (Bool, Int, Int, Bool) {
        let listener = try group.listener(on: core)
        // The raw peer connects and never reads; we send from the accepted side.
        let (peer, transport) = try await rawPeer(on: core, listener: listener)
        // Tasks that capture `core` inherit its isolation, so they may share the connection.
        // (Task-group children do not inherit it; `Task { ... }` does.)
        var senders: [Task<Bool, Never>] = []
        for _ in 0..<4 {
            let sender = Task {
                _ = core
                let frame = Message([UInt8](repeating: 0x33, count: 32 * 1024))
                do {
                    while true {
                        try await transport.send(frame)
                        precondition(transport.queuedBytes <= limit, "queue above its bound")
                    }
                } catch {
                    return error is CancellationError
                }
            }
            senders.append(sender)
        }
        // Wait until the socket is full and senders wait for room in the queue.
        // Yields rather than sleeps: the senders run on this core, so each yield lets them on.
        while transport.roomForSenders.isEmpty { await Task.yield() }
        let bounded = transport.queuedBytes <= limit
        // Another connection on the same core carries on meanwhile.
        let (client, server) = try await connectedPair(on: core, listener: listener)
        try await client.send(Message("still fine"))
        let healthy = String(try await server.recv()) == "still fine"
        await client.close()
        await server.close()
        for sender in senders { sender.cancel() }
        var cancelled = 0
        for sender in senders where await sender.value { cancelled += 1 }
        await transport.close()
        try await core.close(peer)
        await listener.close()
        return (bounded, transport.queuedBytes, cancelled, healthy)
    }

    @Test("Closing while a write is in flight ends every sender with closed, and frees the queue")
    func closeDuringWrite() async throws {
        try await withRuntime { runtime in
            let group = try bindGroup(runtime, configuration: .defaults { $0.maximumQueuedBytes = 256 * 1024 })
            let (codes, queued) = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let (peer, transport) = try await rawPeer(on: core, listener: listener)
                var senders: [Task<TransportError.Code?, Never>] = []
                for _ in 0..<4 {
                    senders.append(Task {
                        _ = core
                        let frame = Message([UInt8](repeating: 0x44, count: 64 * 1024))
                        do { while true { try await transport.send(frame) } } catch { return (error as? TransportError)?.code }
                    })
                }
                // The writer is inside its send (the peer never reads) and the others wait for room.
                while transport.roomForSenders.isEmpty { await Task.yield() }
                await transport.close()
                var codes: [TransportError.Code?] = []
                for sender in senders { codes.append(await sender.value) }
                // The writer task lets go of the frames once the kernel has returned its write.
                while transport.queuedBytes > 0 { await Task.yield() }
                try await core.close(peer)
                await listener.close()
                return (codes, transport.queuedBytes)
            }
            #expect(codes == Array(repeating: .closed, count: 4))
            #expect(queued == 0)
        }
    }
}
