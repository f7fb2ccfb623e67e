public import NetTransport

/// Reads big-endian fields from a received message with bounds checks: running past the end
/// throws ``ByteReader/Truncated`` instead of reading out of bounds.
public struct ByteReader {
    /// Thrown when a field runs past the end of the message.
    public struct Truncated: Error {}

    /// The message read from (kept alive while the reader is).
    public let message: Message
    /// The offset of the next byte.
    public private(set) var offset = 0
    private let base: UnsafeRawPointer?

    /// A reader at the start of `message`.
    public init(_ message: Message) {
        self.message = message
        self.base = message.baseAddress
    }

    /// Bytes not yet read.
    public var remaining: Int { message.count - offset }

    /// Reads a big-endian integer.
    public mutating func read<I: FixedWidthInteger>(_: I.Type = I.self) throws(Truncated) -> I {
        let size = MemoryLayout<I>.size
        guard remaining >= size, let base else { throw Truncated() }
        let value = base.loadUnaligned(fromByteOffset: offset, as: I.self)
        offset += size
        return I(bigEndian: value)
    }

    /// Reads `count` bytes as UTF-8 (bytes that are not UTF-8 become U+FFFD).
    public mutating func readString(count: Int) throws(Truncated) -> String {
        String(decoding: try take(count), as: UTF8.self)
    }

    /// Reads `count` bytes that must be valid UTF-8: nil if they are not (the bytes are read).
    public mutating func readUTF8(count: Int) throws(Truncated) -> String? {
        String(validating: try take(count), as: UTF8.self)
    }

    /// The next `count` bytes, read.
    private mutating func take(_ count: Int) throws(Truncated) -> UnsafeRawBufferPointer {
        guard count >= 0, remaining >= count, let base else {
            if count == 0 { return UnsafeRawBufferPointer(start: nil, count: 0) }
            throw Truncated()
        }
        defer { offset += count }
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }

    /// Reads `count` bytes as a slice of the message (no copy).
    public mutating func readSlice(count: Int) throws(Truncated) -> Message {
        guard count >= 0, remaining >= count else { throw Truncated() }
        let slice = message.slice(offset..<(offset + count))
        offset += count
        return slice
    }

    /// The rest of the message (no copy).
    public mutating func readRest() -> Message {
        let slice = message.slice(offset..<message.count)
        offset = message.count
        return slice
    }

    /// Reads one byte without bounds beyond the message (for varints).
    mutating func readByte() throws(Truncated) -> UInt8 { try read(UInt8.self) }

    /// Borrow `count` bytes in place.
    mutating func withBytes<R>(count: Int, _ body: (UnsafeRawBufferPointer) -> R) throws(Truncated) -> R {
        guard count >= 0, remaining >= count else { throw Truncated() }
        guard let base else { return body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        let result = body(UnsafeRawBufferPointer(start: base + offset, count: count))
        offset += count
        return result
    }
}
