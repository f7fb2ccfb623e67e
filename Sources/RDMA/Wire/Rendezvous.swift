/// The payload of a ``ImmediateData/Kind/rendezvous`` message: where the receiver reads a large
/// message from, in one or two segments (a protocol header and the payload it precedes, sent
/// without joining them). Sent inline; parsed here with every field checked (it comes from the
/// peer).
///
/// Layout, big-endian: token (4), then per segment address (8), length (4), remote key (4): 20
/// bytes for one segment, 36 for two. The token names the message in the ``RendezvousDone`` that
/// lets the sender release its memory; the message is the segments' bytes in order.
public struct RendezvousRequest: Hashable, Sendable {
    /// One piece of the message in the sender's memory.
    public struct Segment: Hashable, Sendable {
        /// Where it lies.
        public var address: UInt64
        /// Its length in bytes (at least 1).
        public var length: Int
        /// The remote key of the sender's registration of it.
        public var remoteKey: UInt32

        /// A segment.
        public init(address: UInt64, length: Int, remoteKey: UInt32) {
            self.address = address
            self.length = length
            self.remoteKey = remoteKey
        }
    }

    /// Segments a request carries at most.
    public static let maximumSegments = 2
    /// Encoded size of a request of the most segments.
    public static let maximumSize = 4 + 16 * maximumSegments

    /// The sender's name for the message.
    public var token: UInt32
    /// Its pieces, in order (1 or 2).
    public var segments: [Segment]

    /// A request.
    public init(token: UInt32, segments: [Segment]) {
        self.token = token
        self.segments = segments
    }

    /// The message's length: its segments' total.
    public var length: Int { segments.reduce(0) { $0 + $1.length } }

    /// Encoded size.
    public var size: Int { 4 + 16 * segments.count }

    /// Writes the encoded request to `out` (at least ``size`` bytes); returns ``size``.
    @discardableResult
    public func encode(into out: UnsafeMutableRawPointer) -> Int {
        out.storeBytes(of: token.bigEndian, toByteOffset: 0, as: UInt32.self)
        for (index, segment) in segments.enumerated() {
            let at = 4 + 16 * index
            out.storeBytes(of: segment.address.bigEndian, toByteOffset: at, as: UInt64.self)
            out.storeBytes(of: UInt32(clamping: segment.length).bigEndian, toByteOffset: at + 8, as: UInt32.self)
            out.storeBytes(of: segment.remoteKey.bigEndian, toByteOffset: at + 12, as: UInt32.self)
        }
        return size
    }

    /// Parses a request; `nil` unless it is a token and 1 or 2 whole segments, each of at least
    /// one byte.
    public init?(parsing raw: UnsafeRawBufferPointer) {
        guard raw.count >= 20, (raw.count - 4) % 16 == 0 else { return nil }
        let count = (raw.count - 4) / 16
        guard count <= Self.maximumSegments else { return nil }
        token = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        segments = []
        for index in 0..<count {
            let at = 4 + 16 * index
            let segment = Segment(
                address: UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self)),
                length: Int(UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: at + 8, as: UInt32.self))),
                remoteKey: UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: at + 12, as: UInt32.self)))
            guard segment.length >= 1 else { return nil }
            segments.append(segment)
        }
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
