import NetTransport

/// The TCP frame format (docs/TCP.md): a 4-byte big-endian payload length, then the payload.
/// A length of zero or above the configured maximum is refused.
public enum FrameHeader {
    /// Bytes in a header.
    public static let size = 4

    /// Reads the payload length at `pointer`.
    @inline(__always)
    static func length(at pointer: UnsafeRawPointer) -> Int {
        Int(UInt32(bigEndian: pointer.loadUnaligned(as: UInt32.self)))
    }

    /// Checks a payload length against the format and `maximum`.
    static func validate(_ length: Int, maximum: Int) throws(TransportError) {
        if length == 0 {
            throw TransportError(.malformedFrame, "a frame of length 0")
        }
        if length > maximum {
            throw TransportError(.frameTooLarge, "a frame of \(length) bytes, above the maximum of \(maximum)")
        }
    }
}
