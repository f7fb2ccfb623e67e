import NetRPC
import NetTransport
import NetTestSupport
import Testing

/// A user type adopting the wire codec, nested and with every kind of field.
struct Order: WireCodable, Equatable {
    struct Line: WireCodable, Equatable {
        var sku: String
        var quantity: UInt32
        func encode(to encoder: inout WireEncoder) { encoder.encode(sku); encoder.encode(quantity) }
        init(sku: String, quantity: UInt32) { self.sku = sku; self.quantity = quantity }
        init(from decoder: inout WireDecoder) throws { sku = try decoder.decode(); quantity = try decoder.decode() }
    }
    var id: Int64
    var price: Double
    var ratio: Float
    var paid: Bool
    var note: String?
    var lines: [Line]
    var blob: [UInt8]
    var small: Int8

    init(id: Int64, price: Double, ratio: Float, paid: Bool, note: String?, lines: [Line], blob: [UInt8], small: Int8) {
        (self.id, self.price, self.ratio, self.paid, self.note, self.lines, self.blob, self.small) = (id, price, ratio, paid, note, lines, blob, small)
    }

    func encode(to encoder: inout WireEncoder) {
        encoder.encode(id); encoder.encode(price); encoder.encode(ratio); encoder.encode(paid)
        encoder.encode(note); encoder.encode(lines); encoder.encode(blob); encoder.encode(small)
    }

    init(from decoder: inout WireDecoder) throws {
        id = try decoder.decode(); price = try decoder.decode(); ratio = try decoder.decode(); paid = try decoder.decode()
        note = try decoder.decode(); lines = try decoder.decode(); blob = try decoder.decode(); small = try decoder.decode()
    }
}

@Suite("Codecs")
struct CodecTests {
    func roundTrip<C: RPCCodec>(_ codec: C, _ value: C.Value) throws -> C.Value {
        var payload = Payload()
        try codec.encode(value, into: &payload)
        return try codec.decode(payload.message ?? Message(payload.bytes))
    }

    @Test("The wire codec round-trips integers at their limits, floats, booleans, strings, bytes, arrays, optionals and nested types")
    func wireRoundTrip() throws {
        let order = Order(
            id: .min, price: -0.0 + 1234.5678, ratio: .infinity, paid: true, note: "café ☕️",
            lines: [.init(sku: "a", quantity: .max), .init(sku: "", quantity: 0)], blob: [0, 255, 7], small: -128)
        #expect(try roundTrip(WireCodec<Order>(), order) == order)
        #expect(try roundTrip(WireCodec<[Int]>(), [0, 1, -1, .max, .min, 300, -300]) == [0, 1, -1, .max, .min, 300, -300])
        #expect(try roundTrip(WireCodec<UInt64>(), .max) == .max)
        #expect(try roundTrip(WireCodec<String?>(), nil) == nil)
        #expect(try roundTrip(WireCodec<Double>(), .pi) == .pi)
    }

    @Test("Small integers take one byte; a signed -1 zigzags to 1")
    func compact() {
        var encoder = WireEncoder()
        encoder.encode(UInt32(5))
        encoder.encode(Int(-1))
        encoder.encode(UInt16(300))
        #expect(encoder.bytes == [5, 1, 0xAC, 0x02])
    }

    @Test("Malformed payloads are typed errors: truncated, overflow, bad tags, lying lengths, trailing bytes")
    func malformed() {
        func decode<T: WireCodable>(_ bytes: [UInt8], as _: T.Type) -> WireDecodingError? {
            do { _ = try WireCodec<T>().decode(Message(bytes)); return nil } catch { return error as? WireDecodingError }
        }
        #expect(decode([0x80], as: UInt64.self) == .truncated)
        #expect(decode([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], as: UInt64.self) == .overflow)
        #expect(decode([0xFF, 0x03], as: UInt8.self) == .trailingBytes(1))
        #expect(decode([0x80, 0x02], as: UInt8.self) == .trailingBytes(1))  // UInt8 is one raw byte
        #expect(decode([0x80, 0x04], as: UInt16.self) == nil)
        #expect(decode([0x80, 0x80, 0x04], as: UInt16.self) == .overflow)
        #expect(decode([2], as: Bool.self) == .invalidTag(2))
        #expect(decode([7], as: String?.self) == .invalidTag(7))
        #expect(decode([0xFF, 0xFF, 0xFF, 0x0F], as: [Int].self) == .invalidLength(0x1FF_FFFF))
        #expect(decode([5, 0x61], as: String.self) == .invalidLength(5))
        // A varint longer than its type allows, though its value fits: 0 in ten bytes.
        #expect(decode([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], as: UInt32.self) == .overflow)
        #expect(decode([0x80, 0x80, 0x80, 0x80, 0x00], as: UInt32.self) == nil)  // five bytes: allowed
        #expect(decode([0x80, 0x80, 0x80, 0x80, 0x80, 0x00], as: Int32.self) == .overflow)
        #expect(decode([2, 0xC3, 0x28], as: String.self) == .invalidUTF8)  // a lead byte, then no continuation
    }

    @Test("Arrays and optionals nest at most maximumDepth (64) deep: a deeper payload is a typed error, not a stack overflow")
    func nestingDepth() {
        func decode<T: WireCodable>(_ bytes: [UInt8], as _: T.Type) -> WireDecodingError? {
            do { _ = try WireCodec<T>().decode(Message(bytes)); return nil } catch { return error as? WireDecodingError }
        }
        // A million levels of `Some`, for a type that nests without end.
        #expect(decode([UInt8](repeating: 1, count: 1_000_000) + [0], as: Chain.self) == .tooDeep(64))
        // 64 levels decode.
        #expect(decode([UInt8](repeating: 1, count: 63) + [0], as: Chain.self) == nil)
        var decoder = WireDecoder(Message([UInt8](repeating: 1, count: 40) + [0]))
        decoder.maximumDepth = 8
        #expect(throws: WireDecodingError.tooDeep(8)) { _ = try decoder.decode(Chain.self) }
    }

    @Test("The raw codec passes a message through without a copy; JSON carries Codable types")
    func rawAndJSON() throws {
        let message = Message("zero copy")
        var payload = Payload()
        RawCodec().encode(message, into: &payload)
        let storage = try #require(message.backingStorage)
        #expect(payload.message?.isBacked(by: storage) == true)
        #expect(RawCodec().decode(message).isBacked(by: storage))
        #expect(try roundTrip(JSONCodec<[String: Int]>(), ["a": 1]) == ["a": 1])
    }
}

/// A type that nests without end: an optional link to another.
final class Chain: WireCodable {
    let next: Chain?
    init(next: Chain?) { self.next = next }
    func encode(to encoder: inout WireEncoder) { next.encode(to: &encoder) }
    init(from decoder: inout WireDecoder) throws { next = try Chain?(from: &decoder) }
}
