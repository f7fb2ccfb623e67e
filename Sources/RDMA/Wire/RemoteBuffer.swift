public import NetTransport

/// A buffer in a peer's registered memory that one-sided RDMA READs and WRITEs may reach: its
/// address, length and remote key, as the peer's ``RDMATransport/remoteAccess(to:)`` gave them.
/// Send it to the peer that will use it in a message (``bytes``, 16 bytes).
///
/// Layout, big-endian: address (8), length (4), remote key (4).
public struct RemoteBuffer: Sendable, Hashable {
    /// Encoded size.
    public static let encodedSize = 16

    /// The first byte, in the owner's address space.
    public var address: UInt64
    /// Its length in bytes.
    public var length: Int
    /// The remote key of the owner's registration.
    public var remoteKey: UInt32

    /// A descriptor.
    public init(address: UInt64, length: Int, remoteKey: UInt32) {
        self.address = address
        self.length = length
        self.remoteKey = remoteKey
    }

    /// `length` bytes from `offset` of this buffer, or `nil` when they do not lie inside it.
    public func slice(offset: Int, length: Int) -> RemoteBuffer? {
        guard offset >= 0, length >= 0, offset <= self.length, length <= self.length - offset else { return nil }
        return RemoteBuffer(address: address + UInt64(offset), length: length, remoteKey: remoteKey)
    }

    /// The encoded descriptor.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.encodedSize)
        withUnsafeBytes(of: address.bigEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(clamping: length).bigEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: remoteKey.bigEndian) { out.append(contentsOf: $0) }
        return out
    }

    /// Parses an encoded descriptor (for example the payload of a message from the peer).
    ///
    /// - Throws: ``TransportError`` `.malformedFrame` unless it is exactly 16 bytes.
    public init(parsing message: Message) throws(TransportError) {
        guard message.count == Self.encodedSize else {
            throw TransportError(.malformedFrame, "a remote buffer descriptor of \(message.count) bytes, not \(Self.encodedSize)")
        }
        (address, length, remoteKey) = message.withUnsafeBytes { raw in
            (UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
             Int(UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))),
             UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
        }
    }
}
