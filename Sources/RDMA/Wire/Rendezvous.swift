/// The payload of a ``ImmediateData/Kind/rendezvous`` message: where the receiver reads a large
/// message from. Sent inline; parsed here with every field checked (it comes from the peer).
///
/// Layout, 20 bytes, big-endian: address (8), length (4), remote key (4), token (4). The token
/// names the message in the ``RendezvousDone`` that lets the sender release its memory.
public struct RendezvousRequest: Hashable, Sendable {
    /// Encoded size.
    public static let size = 20

    /// Where the message lies in the sender's memory.
    public var address: UInt64
    /// Its length in bytes.
    public var length: Int
    /// The remote key of the sender's registration of it.
    public var remoteKey: UInt32
    /// The sender's name for it.
    public var token: UInt32

    /// A request.
    public init(address: UInt64, length: Int, remoteKey: UInt32, token: UInt32) {
        self.address = address
        self.length = length
        self.remoteKey = remoteKey
        self.token = token
    }

    /// Writes the encoded request to `out` (at least ``size`` bytes).
    public func encode(into out: UnsafeMutableRawPointer) {
        out.storeBytes(of: address.bigEndian, toByteOffset: 0, as: UInt64.self)
        out.storeBytes(of: UInt32(clamping: length).bigEndian, toByteOffset: 8, as: UInt32.self)
        out.storeBytes(of: remoteKey.bigEndian, toByteOffset: 12, as: UInt32.self)
        out.storeBytes(of: token.bigEndian, toByteOffset: 16, as: UInt32.self)
    }

    /// Parses a request; `nil` unless it is exactly ``size`` bytes with a length of at least 1.
    public init?(parsing raw: UnsafeRawBufferPointer) {
        guard raw.count == Self.size else { return nil }
        address = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        length = Int(UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        remoteKey = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        token = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
        guard length >= 1 else { return nil }
    }
}

/// The payload of a ``ImmediateData/Kind/rendezvousDone`` message: the tokens of rendezvous
/// messages the receiver has read, 4 bytes each, big-endian, at most ``maximumTokens``.
public enum RendezvousDone {
    /// Tokens one message carries at most (so it stays small enough to send inline).
    public static let maximumTokens = 16

    /// Writes `tokens` (at most ``maximumTokens``) to `out`; returns the bytes written.
    public static func encode(_ tokens: some Collection<UInt32>, into out: UnsafeMutableRawPointer) -> Int {
        var offset = 0
        for token in tokens.prefix(maximumTokens) {
            out.storeBytes(of: token.bigEndian, toByteOffset: offset, as: UInt32.self)
            offset += 4
        }
        return offset
    }

    /// Parses the tokens; `nil` unless the payload is 1 to ``maximumTokens`` whole tokens.
    public static func parse(_ raw: UnsafeRawBufferPointer) -> [UInt32]? {
        guard raw.count >= 4, raw.count % 4 == 0, raw.count / 4 <= maximumTokens else { return nil }
        return (0..<raw.count / 4).map { UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) }
    }
}
