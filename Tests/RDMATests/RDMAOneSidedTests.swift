import NetRuntime
@testable import NetRDMA
import NetTransport
import NetTestSupport
import Testing

/// One-sided RDMA READ and WRITE, on rxe0 (in the guest of scripts/rdma-vm).
@Suite("RDMA one-sided operations on rxe0", .enabled(if: RDMATestEnvironment.inGuest, "needs the soft-RoCE guest (scripts/rdma-tests)"),
       .timeLimit(.minutes(5)))
struct RDMAOneSidedTests {
    @Test("Batched WRITEs land in the peer's buffer and batched READs bring them back, one completion per batch")
    func batchedReadWrite() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: Int] in
                let (client, server, listener) = try await connectedPair(on: core)
                // The server exposes 64 KiB of its registered memory, zeroed, and sends the descriptor.
                var buffer = server.allocateBuffer(capacity: 65_536)
                buffer.append(contentsOf: [UInt8](repeating: 0, count: 65_536))
                let exposed = buffer.freeze()
                try await server.send(Message(try server.remoteAccess(to: exposed).bytes))
                let remote = try RemoteBuffer(parsing: try await client.recv())

                let pieces = (0..<8).map { payload(sender: 9, sequence: $0, size: 1_024) }
                let signaledBefore = client.statistics.signaledSends
                _ = try await client.perform(pieces.enumerated().map { index, bytes in
                    .write(Message(bytes), to: remote.slice(offset: index * 4_096, length: 1_024)!) // '!': inside
                })
                let reads = try await client.perform((0..<8).map { .read(from: remote.slice(offset: $0 * 4_096, length: 1_024)!) })
                let signaled = client.statistics.signaledSends - signaledBefore
                let readBack = zip(reads, pieces).filter { $0?.bytes == $1 }.count
                // The server's CPU took no part; its memory holds the writes.
                let inServerMemory = (0..<8).filter { exposed.slice($0 * 4_096..<($0 * 4_096 + 1_024)).bytes == pieces[$0] }.count
                let untouched = exposed.slice(1_024..<4_096).bytes.allSatisfy { $0 == 0 }
                let whole = try await client.read(remote)
                let stats = client.statistics
                await client.close()
                await server.close()
                await listener.close()
                return ["readBack": readBack, "inServerMemory": inServerMemory, "untouched": untouched ? 1 : 0,
                        "signaled": signaled, "operations": stats.oneSidedOperations, "batches": stats.oneSidedBatches,
                        "whole": whole.count, "serverReceived": server.statistics.messagesReceived]
            }
            #expect(result["readBack"] == 8)
            #expect(result["inServerMemory"] == 8)
            #expect(result["untouched"] == 1)
            #expect(result["signaled"] == 2) // one per batch of 8
            #expect(result["operations"] == 17)
            #expect(result["batches"] == 3)
            #expect(result["whole"] == 65_536)
        }
    }

    @Test("A batch as deep as the send queue, posted behind an unsignaled send on a quiet connection, completes (a signaled message retires the send)")
    func fullBatchBehindUnsignaledSend() async throws {
        try await withRuntime { runtime in
            let (count, depth) = try await runtime.run(on: 0) { core -> (Int, Int) in
                let (client, server, listener) = try await connectedPair(on: core)
                var buffer = server.allocateBuffer(capacity: 65_536)
                buffer.append(contentsOf: [UInt8](repeating: 3, count: 65_536))
                let exposed = buffer.freeze()
                try await server.send(Message(try server.remoteAccess(to: exposed).bytes))
                let remote = try RemoteBuffer(parsing: try await client.recv())
                // One small send, unsignaled (the batch of signals is larger than one)...
                try await client.send(Message(payload(sender: 1, sequence: 0, size: 16)))
                _ = try await server.recv()
                #expect(client.signals.unsignaledRun > 0)
                // ...then as many READs as the send queue holds: they need every slot.
                let depth = client.signals.queueDepth
                let reads = try await client.perform((0..<depth).map { .read(from: remote.slice(offset: $0 * 256 % 65_536, length: 256)!) })
                await client.close()
                await server.close()
                await listener.close()
                return (reads.filter { $0?.bytes == [UInt8](repeating: 3, count: 256) }.count, depth)
            }
            #expect(depth > 1)
            #expect(count == depth)  // every READ came back
        }
    }

    @Test("A foreign buffer is exposed through the registration cache and read by the peer")
    func foreignBuffer() async throws {
        try await withRuntime { runtime in
            let ok = try await runtime.run(on: 0) { core -> Bool in
                let (client, server, listener) = try await connectedPair(on: core)
                let bytes = payload(sender: 10, sequence: 1, size: 100_000)
                let foreign = Message(bytes)
                let remote = try server.remoteAccess(to: foreign)
                let back = try await client.read(remote)
                await client.close()
                await server.close()
                await listener.close()
                return back.bytes == bytes
            }
            #expect(ok)
        }
    }

    @Test("Operations outside their remote buffer are refused before posting; a bad remote key ends only that connection")
    func badOperations() async throws {
        try await withRuntime { runtime in
            let result = try await runtime.run(on: 0) { core -> [String: TransportError.Code?] in
                let (client, server, listener) = try await connectedPair(on: core)
                var buffer = server.allocateBuffer(capacity: 4_096)
                buffer.append(contentsOf: [UInt8](repeating: 5, count: 4_096))
                let remote = try server.remoteAccess(to: buffer.freeze())
                let tooLong = await caught { try await client.write(Message([UInt8](repeating: 1, count: 4_097)), to: remote) }
                let empty = await caught { _ = try await client.perform([]) }
                let refusedButOpen = client.isOpen
                // A key the peer never gave: the device refuses the access, the connection ends.
                let forged = RemoteBuffer(address: remote.address, length: remote.length, remoteKey: remote.remoteKey &+ 0x100)
                let badKey = await caught { _ = try await client.read(forged) }
                let after = await caught { try await client.send(Message([1, 2, 3])) }
                // Another connection on the same core is unharmed.
                let (other, otherServer, otherListener) = try await connectedPair(on: core)
                try await other.send(Message([7, 7, 7]))
                let otherWorks = try await otherServer.recv().bytes == [7, 7, 7]
                for connection in [client, server, other, otherServer] { await connection.close() }
                await listener.close()
                await otherListener.close()
                return ["tooLong": (tooLong as? TransportError)?.code, "empty": (empty as? TransportError)?.code,
                        "refusedButOpen": refusedButOpen ? .closed : nil, "badKey": (badKey as? TransportError)?.code,
                        "after": (after as? TransportError)?.code, "other": otherWorks ? .closed : nil]
            }
            #expect(result["tooLong"] == .invalidArgument)
            #expect(result["empty"] == .invalidArgument)
            #expect(result["refusedButOpen"] == .closed)
            #expect(result["badKey"] == .connectionReset)
            #expect(result["after"] == .connectionReset)
            #expect(result["other"] == .closed)
        }
    }
}
