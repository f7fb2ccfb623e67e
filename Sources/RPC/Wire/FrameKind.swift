/// The kind of an RPC frame (byte 1 of every frame; docs/PROTOCOL.md).
public enum FrameKind: UInt8, Sendable, CaseIterable {
    /// A call that expects a response or an error.
    case request = 1
    /// The successful result of a request.
    case response = 2
    /// The failure of a request (a status and a message), or of the connection (call ID 0).
    case error = 3
    /// The caller gave up on a request; the server cancels its handler.
    case cancel = 4
    /// A call that expects nothing back.
    case oneWay = 5
    /// A liveness probe; answered with a pong carrying the same call ID.
    case ping = 6
    /// The answer to a ping.
    case pong = 7
    /// The server is shutting down: calls after the ID it names will not be served.
    case goAway = 8
    /// The first frame each side sends: protocol versions and limits.
    case hello = 9
}

/// Flag bits of a frame header (bytes 2-3).
public struct FrameFlags: OptionSet, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// The request names its method by string instead of by numeric ID.
    public static let methodName = FrameFlags(rawValue: 1 << 0)
    /// The request carries a deadline (a timeout in nanoseconds).
    public static let deadline = FrameFlags(rawValue: 1 << 1)
    /// The request carries metadata.
    public static let metadata = FrameFlags(rawValue: 1 << 2)
}

/// The wire protocol's constants.
public enum RPCWire {
    /// The protocol version this library speaks.
    public static let version: UInt8 = 1
    /// Bytes of the common header: version, kind, flags, call ID.
    public static let headerSize = 12
    /// The hello frame's magic, "SNRP".
    public static let magic: [UInt8] = [0x53, 0x4E, 0x52, 0x50]
}
