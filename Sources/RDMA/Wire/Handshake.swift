/// The handshake both sides exchange in the connection manager's private data (the connect
/// request's and the accept's): protocol version, receive slots (credits) and buffer sizes.
/// Parsed here, with every field checked: the request comes from anyone who can reach the port.
///
/// Layout, 28 bytes, integers big-endian (docs/RDMA.md):
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic `0x534E4D52` ("SNMR") |
/// | 4 | 1 | version (1) |
/// | 5 | 1 | flags: bit 0 = rendezvous (it RDMA-READs large messages, and lets the peer read its) |
/// | 6 | 2 | reserved (0) |
/// | 8 | 4 | data receive slots the sender posts |
/// | 12 | 4 | receive slots it reserves for credit returns |
/// | 16 | 4 | bytes of each receive buffer (the largest message it takes) |
/// | 20 | 4 | the largest message it will send |
/// | 24 | 4 | the credit-return batch it uses |
///
/// The connect request's private data is at most 56 bytes on RC (the CM pads it with zeros, so
/// more bytes than 28 may arrive: they are ignored).
public struct Handshake: Hashable, Sendable {
    /// The magic number, "SNMR".
    public static let magic: UInt32 = 0x534E_4D52
    /// The protocol version this code speaks.
    public static let currentVersion: UInt8 = 1
    /// Encoded size.
    public static let size = 28
    /// The flag bit of ``rendezvous``.
    static let rendezvousFlag: UInt8 = 0x01

    /// Protocol version.
    public var version: UInt8
    /// Data receive slots the sender of the handshake posts.
    public var dataSlots: Int
    /// Receive slots it reserves for credit returns.
    public var reservedSlots: Int
    /// Bytes of each of its receive buffers.
    public var receiveBufferSize: Int
    /// The largest message it will send.
    public var maximumMessageSize: Int
    /// Its credit-return batch.
    public var creditReturnBatch: Int
    /// Whether it speaks the rendezvous protocol (reads large messages, and lets its peer read
    /// them from its memory): without it on both sides, messages are at most a receive buffer.
    public var rendezvous: Bool

    /// A handshake.
    public init(version: UInt8 = Handshake.currentVersion, dataSlots: Int, reservedSlots: Int, receiveBufferSize: Int,
                maximumMessageSize: Int, creditReturnBatch: Int, rendezvous: Bool = true) {
        self.version = version
        self.dataSlots = dataSlots
        self.reservedSlots = reservedSlots
        self.receiveBufferSize = receiveBufferSize
        self.maximumMessageSize = maximumMessageSize
        self.creditReturnBatch = creditReturnBatch
        self.rendezvous = rendezvous
    }

    /// Why a handshake was refused.
    public enum ParseError: Error, Hashable, Sendable {
        /// Fewer bytes than a handshake.
        case tooShort(Int)
        /// Not our magic number: not a swift-net peer.
        case badMagic(UInt32)
        /// A version this code does not speak.
        case unsupportedVersion(UInt8)
        /// A field out of its range.
        case badField(String)
    }

    /// The encoded bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.size)
        func put(_ value: UInt32) { withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) } }
        put(Self.magic)
        out += [version, rendezvous ? Self.rendezvousFlag : 0, 0, 0]
        put(UInt32(clamping: dataSlots))
        put(UInt32(clamping: reservedSlots))
        put(UInt32(clamping: receiveBufferSize))
        put(UInt32(clamping: maximumMessageSize))
        put(UInt32(clamping: creditReturnBatch))
        return out
    }

    /// Parses and checks a handshake.
    ///
    /// - Throws: ``ParseError`` for anything but a well-formed version-1 handshake whose slot
    ///   counts are at least 1 (at most 65,536), whose buffers are at least 64 bytes, and whose
    ///   batch is at least 1 and at most its reserve.
    public init(parsing raw: UnsafeRawBufferPointer) throws(ParseError) {
        guard raw.count >= Self.size else { throw .tooShort(raw.count) }
        func get(_ offset: Int) -> UInt32 { UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        let magic = get(0)
        guard magic == Self.magic else { throw .badMagic(magic) }
        let version = raw[4]
        guard version == Self.currentVersion else { throw .unsupportedVersion(version) }
        let data = Int(get(8)), reserved = Int(get(12)), buffer = Int(get(16)), maximum = Int(get(20)), batch = Int(get(24))
        guard (1...65_536).contains(data) else { throw .badField("data slots \(data)") }
        guard (1...65_536).contains(reserved) else { throw .badField("reserved slots \(reserved)") }
        guard buffer >= 64 else { throw .badField("receive buffer size \(buffer)") }
        guard maximum >= 1 else { throw .badField("maximum message size \(maximum)") }
        guard batch >= 1 && batch <= reserved else { throw .badField("credit-return batch \(batch) with \(reserved) reserved slots") }
        self.init(version: version, dataSlots: data, reservedSlots: reserved, receiveBufferSize: buffer,
                  maximumMessageSize: maximum, creditReturnBatch: batch, rendezvous: raw[5] & Self.rendezvousFlag != 0)
    }

    /// Parses `bytes`.
    public init(parsing bytes: [UInt8]) throws(ParseError) {
        let parsed: Result<Handshake, ParseError> = bytes.withUnsafeBytes { raw in
            Result { () throws(ParseError) in try Handshake(parsing: raw) }
        }
        self = try parsed.get()
    }
}
