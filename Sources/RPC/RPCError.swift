/// Why a call failed: a typed status that crosses the wire (docs/PROTOCOL.md lists the codes),
/// with a human-readable message.
public struct RPCError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A status code; the numbers are those of the wire protocol (and of gRPC where one exists).
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        /// The caller cancelled the call, or the server cancelled the handler.
        public static let cancelled = Code(rawValue: 1)
        /// An error the server could not classify.
        public static let unknown = Code(rawValue: 2)
        /// The request payload (or the response, at the client) could not be decoded.
        public static let undecodable = Code(rawValue: 3)
        /// The call's deadline passed.
        public static let deadlineExceeded = Code(rawValue: 4)
        /// A limit was reached: calls in flight, metadata size, queue space.
        public static let resourceExhausted = Code(rawValue: 8)
        /// No handler for the method.
        public static let unknownMethod = Code(rawValue: 12)
        /// The handler threw; the message is its error's description.
        public static let handlerError = Code(rawValue: 13)
        /// The server is draining (go-away) or the peer cannot be reached now; try elsewhere.
        public static let unavailable = Code(rawValue: 14)
        /// The connection ended while the call was pending (never sent on the wire).
        public static let connectionLost = Code(rawValue: 15)
        /// The peer broke the protocol: a malformed frame, an unknown kind or version.
        public static let protocolError = Code(rawValue: 16)

        public var description: String {
            switch self {
            case .cancelled: "cancelled"
            case .unknown: "unknown"
            case .undecodable: "undecodable"
            case .deadlineExceeded: "deadlineExceeded"
            case .resourceExhausted: "resourceExhausted"
            case .unknownMethod: "unknownMethod"
            case .handlerError: "handlerError"
            case .unavailable: "unavailable"
            case .connectionLost: "connectionLost"
            case .protocolError: "protocolError"
            default: "code(\(rawValue))"
            }
        }
    }

    /// The status.
    public var code: Code
    /// What happened, for people.
    public var message: String

    /// An error with `code` and `message`.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "RPCError(\(code)): \(message)" }
}
