public import NetTransport

/// A type the compact binary codec can carry. Adopt it in a few lines by encoding the fields in
/// order and decoding them in the same order:
///
/// ```swift
/// struct Point: WireCodable {
///     var x: Int, y: Int, label: String?
///     func encode(to encoder: inout WireEncoder) { encoder.encode(x); encoder.encode(y); encoder.encode(label) }
///     init(from decoder: inout WireDecoder) throws { x = try decoder.decode(); y = try decoder.decode(); label = try decoder.decode() }
/// }
/// ```
///
/// Integers are LEB128 varints (signed ones zigzag-encoded), floats IEEE-754 big-endian, booleans
/// one byte, strings and bytes a varint length then the bytes, arrays a varint count then the
/// elements, optionals a 0/1 byte then the value (docs/PROTOCOL.md).
public protocol WireCodable {
    /// Appends the value's fields.
    func encode(to encoder: inout WireEncoder)
    /// Reads the value's fields in the order `encode` wrote them.
    init(from decoder: inout WireDecoder) throws
}

/// Why a payload could not be decoded.
public enum WireDecodingError: Error, Equatable {
    /// The payload ended inside a value.
    case truncated
    /// A varint longer than its type allows.
    case overflow
    /// A byte that is not a valid boolean or optional tag.
    case invalidTag(UInt8)
    /// A length or count larger than the bytes left (or than an `Int`).
    case invalidLength(UInt64)
    /// Bytes left after the value.
    case trailingBytes(Int)
    /// Arrays and optionals nested deeper than ``WireDecoder/maximumDepth``.
    case tooDeep(Int)
    /// A string whose bytes are not valid UTF-8.
    case invalidUTF8
}

/// Appends values in the wire codec's format.
public struct WireEncoder {
    /// The bytes so far.
    public internal(set) var bytes: [UInt8]

    /// An encoder that appends to `bytes`.
    public init(bytes: [UInt8] = []) { self.bytes = bytes }

    /// Appends a value.
    public mutating func encode<T: WireCodable>(_ value: T) { value.encode(to: &self) }

    /// Appends an unsigned varint.
    public mutating func encodeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Appends raw bytes with a varint length.
    public mutating func encodeBytes(_ raw: UnsafeRawBufferPointer) {
        encodeVarint(UInt64(raw.count))
        bytes.append(contentsOf: raw)
    }

    /// Appends a fixed-width big-endian integer.
    public mutating func encodeFixed<I: FixedWidthInteger>(_ value: I) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }
}

/// Reads values in the wire codec's format from a received payload.
public struct WireDecoder {
    private var reader: ByteReader
    /// How deep arrays and optionals may nest (each level is a call on the core's stack, and a
    /// peer pays one byte a level). Default 64.
    public var maximumDepth = 64
    private var depth = 0

    /// A decoder at the start of `payload`.
    public init(_ payload: Message) { reader = ByteReader(payload) }

    /// Decodes a nested value (an array's elements, an optional's value) one level deeper.
    ///
    /// - Throws: ``WireDecodingError/tooDeep(_:)`` past ``maximumDepth``.
    public mutating func nested<T>(_ body: (inout WireDecoder) throws -> T) throws -> T {
        guard depth < maximumDepth else { throw WireDecodingError.tooDeep(maximumDepth) }
        depth += 1
        defer { depth -= 1 }
        return try body(&self)
    }

    /// Bytes not yet read.
    public var remaining: Int { reader.remaining }
    /// Whether every byte has been read.
    public var isAtEnd: Bool { reader.remaining == 0 }

    /// Reads a value.
    public mutating func decode<T: WireCodable>(_: T.Type = T.self) throws -> T { try T(from: &self) }

    /// Reads an unsigned varint of at most `maximumBytes` bytes (10 for 64 bits; a type of
    /// `bits` bits takes at most `(bits + 6) / 7`, and a longer one is an error).
    public mutating func decodeVarint(maximumBytes: Int = 10) throws(WireDecodingError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var count = 0
        while true {
            guard let byte = try? reader.readByte() else { throw .truncated }
            count += 1
            if shift == 63 && byte > 1 { throw .overflow }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            shift += 7
            if shift > 63 || count >= maximumBytes { throw .overflow }
        }
    }

    /// Reads a length that must fit in the bytes left.
    public mutating func decodeLength() throws(WireDecodingError) -> Int {
        let length = try decodeVarint()
        guard length <= UInt64(reader.remaining) else { throw .invalidLength(length) }
        return Int(length)
    }

    /// Reads a fixed-width big-endian integer.
    public mutating func decodeFixed<I: FixedWidthInteger>(_: I.Type = I.self) throws(WireDecodingError) -> I {
        guard let value = try? reader.read(I.self) else { throw .truncated }
        return value
    }

    /// Reads a length-prefixed byte string as a slice of the payload (no copy).
    public mutating func decodeBytes() throws(WireDecodingError) -> Message {
        let count = try decodeLength()
        guard let slice = try? reader.readSlice(count: count) else { throw .truncated }
        return slice
    }

    /// Reads a length-prefixed UTF-8 string.
    public mutating func decodeString() throws(WireDecodingError) -> String {
        let count = try decodeLength()
        let read: String?
        do { read = try reader.readUTF8(count: count) } catch { throw .truncated }
        guard let string = read else { throw .invalidUTF8 }
        return string
    }
}

// MARK: Standard conformances

extension WireCodable where Self: FixedWidthInteger & UnsignedInteger {
    public func encode(to encoder: inout WireEncoder) { encoder.encodeVarint(UInt64(self)) }
    public init(from decoder: inout WireDecoder) throws {
        let value = try decoder.decodeVarint(maximumBytes: (Self.bitWidth + 6) / 7)
        guard let exact = Self(exactly: value) else { throw WireDecodingError.overflow }
        self = exact
    }
}

extension WireCodable where Self: FixedWidthInteger & SignedInteger {
    public func encode(to encoder: inout WireEncoder) {
        let wide = Int64(self)
        encoder.encodeVarint(UInt64(bitPattern: (wide << 1) ^ (wide >> 63)))  // zigzag
    }
    public init(from decoder: inout WireDecoder) throws {
        let raw = try decoder.decodeVarint(maximumBytes: (Self.bitWidth + 6) / 7)
        let wide = Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
        guard let exact = Self(exactly: wide) else { throw WireDecodingError.overflow }
        self = exact
    }
}

extension UInt8: WireCodable {
    public func encode(to encoder: inout WireEncoder) { encoder.bytes.append(self) }
    public init(from decoder: inout WireDecoder) throws { self = try decoder.decodeFixed() }
}
extension UInt16: WireCodable {}
extension UInt32: WireCodable {}
extension UInt64: WireCodable {}
extension UInt: WireCodable {}
extension Int8: WireCodable {}
extension Int16: WireCodable {}
extension Int32: WireCodable {}
extension Int64: WireCodable {}
extension Int: WireCodable {}

extension Bool: WireCodable {
    public func encode(to encoder: inout WireEncoder) { encoder.bytes.append(self ? 1 : 0) }
    public init(from decoder: inout WireDecoder) throws {
        let byte: UInt8 = try decoder.decodeFixed()
        guard byte <= 1 else { throw WireDecodingError.invalidTag(byte) }
        self = byte == 1
    }
}

extension Double: WireCodable {
    public func encode(to encoder: inout WireEncoder) { encoder.encodeFixed(bitPattern) }
    public init(from decoder: inout WireDecoder) throws { self.init(bitPattern: try decoder.decodeFixed()) }
}

extension Float: WireCodable {
    public func encode(to encoder: inout WireEncoder) { encoder.encodeFixed(bitPattern) }
    public init(from decoder: inout WireDecoder) throws { self.init(bitPattern: try decoder.decodeFixed()) }
}

extension String: WireCodable {
    public func encode(to encoder: inout WireEncoder) {
        var copy = self
        copy.withUTF8 { encoder.encodeBytes(UnsafeRawBufferPointer($0)) }
    }
    public init(from decoder: inout WireDecoder) throws { self = try decoder.decodeString() }
}

extension Message: WireCodable {
    /// Bytes with a varint length; decoding returns a slice of the payload (no copy).
    public func encode(to encoder: inout WireEncoder) { withUnsafeBytes { encoder.encodeBytes($0) } }
    public init(from decoder: inout WireDecoder) throws { self = try decoder.decodeBytes() }
}

extension Array: WireCodable where Element: WireCodable {
    public func encode(to encoder: inout WireEncoder) {
        encoder.encodeVarint(UInt64(count))
        for element in self { element.encode(to: &encoder) }
    }
    public init(from decoder: inout WireDecoder) throws {
        // Every element takes at least one byte: a count above the bytes left is a lie. Even
        // within them, an element may take far more memory than wire bytes, so the claimed
        // count reserves at most 64 KiB; the array grows as elements actually decode.
        let count = try decoder.decodeLength()
        self.init()
        reserveCapacity(Swift.min(count, Swift.max(1, 65_536 / Swift.max(1, MemoryLayout<Element>.stride))))
        try decoder.nested { decoder in
            for _ in 0..<count { append(try Element(from: &decoder)) }
        }
    }
}

extension Optional: WireCodable where Wrapped: WireCodable {
    public func encode(to encoder: inout WireEncoder) {
        switch self {
        case .none: encoder.bytes.append(0)
        case .some(let value):
            encoder.bytes.append(1)
            value.encode(to: &encoder)
        }
    }
    public init(from decoder: inout WireDecoder) throws {
        let tag: UInt8 = try decoder.decodeFixed()
        switch tag {
        case 0: self = .none
        case 1: self = .some(try decoder.nested { try Wrapped(from: &$0) })
        default: throw WireDecodingError.invalidTag(tag)
        }
    }
}
