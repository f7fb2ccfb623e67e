public import NetRuntime

/// The error every transport throws, whatever its driver (TCP, RDMA): what went wrong, a message
/// for people, and the system error under it if there was one.
public struct TransportError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong. A struct with static members, so drivers can add codes without breaking
    /// a caller's `switch`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's name.
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The transport was closed, by us or by the peer at a frame boundary (end of stream).
        public static let closed = Code("closed")
        /// The peer reset the connection, or it failed under us.
        public static let connectionReset = Code("connectionReset")
        /// A frame's length is above the configured maximum (received or to be sent).
        public static let frameTooLarge = Code("frameTooLarge")
        /// A frame that breaks the format (for example a zero length).
        public static let malformedFrame = Code("malformedFrame")
        /// The stream ended inside a frame.
        public static let truncatedFrame = Code("truncatedFrame")
        /// A connect, an idle connection or an operation outlived its time limit.
        public static let timedOut = Code("timedOut")
        /// A connection could not be made (refused, unreachable, ...).
        public static let connectFailed = Code("connectFailed")
        /// A second receive was started while one was in progress.
        public static let concurrentReceive = Code("concurrentReceive")
        /// The runtime (or its core) is shutting down.
        public static let shutDown = Code("shutDown")
        /// Resources ran out (registered memory, queue slots).
        public static let resourceExhausted = Code("resourceExhausted")
        /// The peer broke the protocol (for example sent past its credits, or a bad handshake).
        public static let protocolViolation = Code("protocolViolation")
        /// The transport cannot work on this machine (for example no RDMA device).
        public static let unavailable = Code("unavailable")
        /// A call's arguments are out of range (for example a one-sided RDMA operation larger
        /// than its remote buffer); nothing was sent.
        public static let invalidArgument = Code("invalidArgument")
    }

    /// What went wrong.
    public let code: Code
    /// Details for people.
    public let message: String
    /// The system error under it, if any.
    public let underlying: IOError?

    /// Creates an error.
    public init(_ code: Code, _ message: String, underlying: IOError? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        underlying.map { "\(code): \(message) (\($0))" } ?? "\(code): \(message)"
    }

    /// Translates a runtime error met during `operation` into a transport error.
    public static func from(_ error: any Error, during operation: String) -> any Error {
        switch error {
        case let error as TransportError:
            return error
        case is CancellationError:
            return error
        case let error as IOError where error.isTimeout:
            return TransportError(.timedOut, "\(operation) timed out", underlying: error)
        case let error as IOError where error.isConnectionReset:
            return TransportError(.connectionReset, "\(operation): connection reset", underlying: error)
        case let error as IOError:
            return TransportError(.connectionReset, "\(operation) failed", underlying: error)
        case let error as RuntimeError where error.isShutDown:
            return TransportError(.shutDown, "\(operation): \(error.message)")
        default:
            return TransportError(.connectionReset, "\(operation) failed: \(error)")
        }
    }
}
