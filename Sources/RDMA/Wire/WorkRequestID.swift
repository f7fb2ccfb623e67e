/// The 64-bit `wr_id` of every work request: enough to route any completion, error completions
/// included (on error only `wr_id`, `status`, `qp_num` and `vendor_err` are valid, never the
/// opcode).
///
/// Layout: bits 63...32 the connection's number on its core, bit 31 set for sends, bits 30...0
/// the receive slot or the low 31 bits of the send's sequence number.
public struct WorkRequestID: Hashable, Sendable {
    /// Bits of the send sequence number kept in the id.
    public static let sequenceBits = 31

    /// The connection's number on its core.
    public let connection: UInt32
    /// Whether it is a send (else a receive).
    public let isSend: Bool
    /// The receive slot, or the low bits of the send sequence number.
    public let index: UInt32

    /// A receive of `slot` on `connection`.
    public static func receive(connection: UInt32, slot: Int) -> WorkRequestID {
        WorkRequestID(connection: connection, isSend: false, index: UInt32(truncatingIfNeeded: slot) & 0x7FFF_FFFF)
    }

    /// The send with sequence number `sequence` on `connection`.
    public static func send(connection: UInt32, sequence: UInt64) -> WorkRequestID {
        WorkRequestID(connection: connection, isSend: true, index: UInt32(truncatingIfNeeded: sequence) & 0x7FFF_FFFF)
    }

    /// Decodes a `wr_id`.
    public init(raw: UInt64) {
        connection = UInt32(truncatingIfNeeded: raw >> 32)
        isSend = raw & 0x8000_0000 != 0
        index = UInt32(truncatingIfNeeded: raw) & 0x7FFF_FFFF
    }

    init(connection: UInt32, isSend: Bool, index: UInt32) {
        self.connection = connection
        self.isSend = isSend
        self.index = index
    }

    /// The encoded `wr_id`.
    public var raw: UInt64 {
        UInt64(connection) << 32 | (isSend ? 0x8000_0000 : 0) | UInt64(index)
    }
}
