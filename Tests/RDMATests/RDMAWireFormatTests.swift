@testable import NetRDMA
import NetTransport
import NetTestSupport
import Testing

@Suite("RDMA wire format")
struct RDMAWireFormatTests {
    let handshake = Handshake(dataSlots: 64, reservedSlots: 8, receiveBufferSize: 65_536, maximumMessageSize: 65_536, creditReturnBatch: 8)

    @Test("The handshake is 28 bytes, big-endian, magic first, and round-trips")
    func handshakeLayout() throws {
        let bytes = handshake.bytes
        #expect(bytes.count == Handshake.size)
        #expect(Array(bytes[0..<8]) == [0x53, 0x4E, 0x4D, 0x52, 1, 1, 0, 0]) // flags: rendezvous
        #expect(Array(bytes[8..<12]) == [0, 0, 0, 64])
        #expect(Array(bytes[16..<20]) == [0, 1, 0, 0])
        #expect(try Handshake(parsing: bytes) == handshake)
        // The CM pads private data with zeros: trailing bytes are ignored.
        #expect(try Handshake(parsing: bytes + [UInt8](repeating: 0, count: 28)) == handshake)
    }

    @Test("Bad handshakes are refused with the reason, never a crash")
    func badHandshakes() {
        let good = handshake.bytes
        #expect(throws: Handshake.ParseError.tooShort(27)) { try Handshake(parsing: Array(good.prefix(27))) }
        #expect(throws: Handshake.ParseError.tooShort(0)) { try Handshake(parsing: [UInt8]()) }
        var magic = good; magic[0] = 0
        #expect(throws: Handshake.ParseError.badMagic(0x004E_4D52)) { try Handshake(parsing: magic) }
        var version = good; version[4] = 2
        #expect(throws: Handshake.ParseError.unsupportedVersion(2)) { try Handshake(parsing: version) }
        var zeroSlots = good; zeroSlots[11] = 0
        #expect(throws: Handshake.ParseError.self) { try Handshake(parsing: zeroSlots) }
        var hugeSlots = good; hugeSlots[8] = 0xFF
        #expect(throws: Handshake.ParseError.self) { try Handshake(parsing: hugeSlots) }
        var bigBatch = good; bigBatch[27] = 9   // batch above the reserve
        #expect(throws: Handshake.ParseError.self) { try Handshake(parsing: bigBatch) }
        var tinyBuffer = good; tinyBuffer[17] = 0; tinyBuffer[18] = 0; tinyBuffer[19] = 10
        #expect(throws: Handshake.ParseError.self) { try Handshake(parsing: tinyBuffer) }
    }

    @Test("Random bytes never parse by accident and never crash", arguments: [1, 2, 3] as [UInt64])
    func fuzz(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        for _ in 0..<5_000 {
            let count = Int(random.next() % 64)
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            #expect((try? Handshake(parsing: bytes)) == nil)
        }
    }

    @Test("Immediate data: kind in the top byte, credits below, clamped")
    func immediate() {
        let data = ImmediateData(kind: .data, credits: 5)
        #expect(data.raw == 0x0100_0005)
        #expect(ImmediateData(raw: 0x0200_0102) == ImmediateData(kind: .credits, credits: 258))
        #expect(ImmediateData(raw: 0x0500_0000) == nil)
        #expect(ImmediateData(kind: .credits, credits: 1 << 30).credits == ImmediateData.maximumCredits)
    }

    @Test("Work-request ids keep the connection, direction and index")
    func workRequestIDs() {
        let send = WorkRequestID.send(connection: 0xDEAD_BEEF, sequence: (1 << 31) + 7)
        #expect(WorkRequestID(raw: send.raw) == send)
        #expect(send.isSend && send.index == 7 && send.connection == 0xDEAD_BEEF)
        let receive = WorkRequestID.receive(connection: 3, slot: 71)
        #expect(!WorkRequestID(raw: receive.raw).isSend && WorkRequestID(raw: receive.raw).index == 71)
    }

    @Test("The configuration is brought into range; its reserve covers a credit-return batch")
    func configuration() {
        let odd = RDMATransport.Configuration.defaults {
            $0.maximumOutstandingSends = 0
            $0.sendSignalBatch = 1_000
            $0.receiveDepth = 4
            $0.creditReturnBatch = 50
            $0.retryCount = 9
            $0.busyPolling = .zero
        }.normalized
        #expect(odd.maximumOutstandingSends == 2)
        // No receive buffer left beside the credit-return batch: every send is signaled.
        #expect(odd.sendSignalBatch == 1)
        #expect(odd.creditReturnBatch == 4)
        // A run of unsignaled sends of received messages holds at most half the data buffers.
        #expect(RDMATransport.Configuration.defaults { $0.receiveDepth = 8; $0.creditReturnBatch = 2 }.normalized.sendSignalBatch == 3)
        #expect(RDMATransport.Configuration.defaults.normalized.sendSignalBatch == 16)
        #expect(RDMATransport.Configuration.defaults { $0.maximumQueuedSends = 0 }.normalized.maximumQueuedSends == 1)
        #expect(odd.reservedSlots >= odd.creditReturnBatch)
        #expect(odd.retryCount == 7)
        #expect(odd.busyPolling == nil)  // zero (or negative) busy polling means none
        #expect(RDMATransport.Configuration.defaults { $0.busyPolling = .milliseconds(1) }.normalized.busyPolling == .milliseconds(1))
        #expect(RDMATransport.Configuration.defaults.rnrRetryCount == 7)
    }

    @Test("A handshake without the rendezvous flag parses as a peer that takes only eager messages")
    func rendezvousFlag() throws {
        var bytes = handshake.bytes
        bytes[5] = 0
        let parsed = try Handshake(parsing: bytes)
        #expect(!parsed.rendezvous)
        #expect(handshake.rendezvous)
    }

    @Test("A rendezvous request is a token and 1 or 2 segments of 16 bytes, big-endian, and round-trips; other sizes and empty segments are refused")
    func rendezvousRequest() {
        let one = RendezvousRequest(token: 7, segments: [.init(address: 0x0102_0304_0506_0708, length: 1 << 20, remoteKey: 0xAABB_CCDD)])
        var bytes = [UInt8](repeating: 0, count: one.size)
        _ = bytes.withUnsafeMutableBytes { one.encode(into: $0.baseAddress!) }
        #expect(bytes.count == 20)
        #expect(Array(bytes[0..<4]) == [0, 0, 0, 7])
        #expect(Array(bytes[4..<12]) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(Array(bytes[12..<16]) == [0, 0x10, 0, 0])
        #expect(bytes.withUnsafeBytes { RendezvousRequest(parsing: $0) } == one)
        let two = RendezvousRequest(token: 9, segments: [.init(address: 0x1000, length: 24, remoteKey: 1),
                                                         .init(address: 0x9000, length: 1 << 20, remoteKey: 2)])
        var twoBytes = [UInt8](repeating: 0, count: two.size)
        _ = twoBytes.withUnsafeMutableBytes { two.encode(into: $0.baseAddress!) }
        #expect(twoBytes.count == RendezvousRequest.maximumSize)
        #expect(twoBytes.withUnsafeBytes { RendezvousRequest(parsing: $0) } == two)
        #expect(two.length == 24 + (1 << 20))
        for size in [0, 4, 19, 21, 35, 52] {
            #expect([UInt8](repeating: 1, count: size).withUnsafeBytes { RendezvousRequest(parsing: $0) } == nil)
        }
        var zero = bytes
        zero[12...15] = [0, 0, 0, 0]
        #expect(zero.withUnsafeBytes { RendezvousRequest(parsing: $0) } == nil)
    }

    @Test("A rendezvous done carries 1 to 16 whole tokens")
    func rendezvousDone() {
        var bytes = [UInt8](repeating: 0, count: 64)
        let tokens: [UInt32] = Array(0..<20)
        let written = bytes.withUnsafeMutableBytes { RendezvousDone.encode(tokens, into: $0.baseAddress!) }
        #expect(written == 64) // at most 16 tokens
        #expect(bytes.withUnsafeBytes { RendezvousDone.parse($0) } == Array(0..<16))
        #expect([UInt8]().withUnsafeBytes { RendezvousDone.parse($0) } == nil)
        #expect([UInt8](repeating: 0, count: 6).withUnsafeBytes { RendezvousDone.parse($0) } == nil)
        #expect([UInt8](repeating: 0, count: 68).withUnsafeBytes { RendezvousDone.parse($0) } == nil)
    }

    @Test("A remote buffer descriptor is 16 bytes and round-trips; slices stay inside it")
    func remoteBuffer() throws {
        let remote = RemoteBuffer(address: 0x1000, length: 4_096, remoteKey: 42)
        #expect(remote.bytes.count == RemoteBuffer.encodedSize)
        #expect(try RemoteBuffer(parsing: Message(remote.bytes)) == remote)
        #expect(throws: TransportError.self) { try RemoteBuffer(parsing: Message(Array(remote.bytes.prefix(15)))) }
        #expect(remote.slice(offset: 1_024, length: 1_024) == RemoteBuffer(address: 0x1400, length: 1_024, remoteKey: 42))
        #expect(remote.slice(offset: 4_096, length: 0) != nil)
        #expect(remote.slice(offset: 4_000, length: 97) == nil)
        #expect(remote.slice(offset: -1, length: 1) == nil)
    }
}
