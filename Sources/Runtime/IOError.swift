#if canImport(Glibc)
import Glibc
#endif

/// A system call or ring operation that failed, with the `errno` it ended with.
///
/// Cancellation of the calling task is not an `IOError`: operations cancelled that way throw
/// `CancellationError`. An operation whose own deadline passed throws an `IOError` whose
/// ``code`` is `ETIMEDOUT`.
public struct IOError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The `errno` value (positive), for example `ECONNRESET`.
    public var code: Int32
    /// What was being done when it failed.
    public var operation: Operation

    /// Creates an error from an `errno` value and the operation that produced it.
    public init(code: Int32, operation: Operation) {
        self.code = code
        self.operation = operation
    }

    /// The operation that failed. A struct with static members, so new operations can be added
    /// without breaking a caller's `switch`.
    public struct Operation: Hashable, Sendable, CustomStringConvertible {
        /// The operation's name, as printed.
        public let name: String
        /// Creates an operation name.
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let accept = Operation("accept")
        public static let connect = Operation("connect")
        public static let recv = Operation("recv")
        public static let send = Operation("send")
        public static let sendmsg = Operation("sendmsg")
        public static let poll = Operation("poll")
        public static let shutdown = Operation("shutdown")
        public static let close = Operation("close")
        public static let socket = Operation("socket")
        public static let bind = Operation("bind")
        public static let listen = Operation("listen")
        public static let setsockopt = Operation("setsockopt")
        public static let getsockname = Operation("getsockname")
        public static let ringSetup = Operation("io_uring_setup")
        public static let epoll = Operation("epoll")
        public static let eventfd = Operation("eventfd")
        public static let affinity = Operation("sched_setaffinity")
        public static let threadCreate = Operation("pthread_create")
        public static let resolve = Operation("resolve")
    }

    /// True when the peer reset or aborted the connection.
    public var isConnectionReset: Bool {
        code == ECONNRESET || code == EPIPE || code == ECONNABORTED
    }

    /// True when the operation's own deadline passed.
    public var isTimeout: Bool { code == ETIMEDOUT }

    public var description: String {
        let text = strerror(code).map { String(cString: $0) } ?? "errno \(code)"
        return "\(operation) failed: \(text) (errno \(code))"
    }
}

/// A failure of the runtime itself rather than of one operation.
public struct RuntimeError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Kind: Hashable, Sendable {
        case shutDown, noSuchCore, noCPUs, notOnCore
    }
    private let kind: Kind
    /// Details for a reader of logs.
    public let message: String

    private init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The runtime is shutting down or has shut down; no new work is taken.
    public static func shutDown(_ message: String = "the runtime is shut down") -> RuntimeError {
        RuntimeError(.shutDown, message)
    }
    /// A core index outside the runtime's cores.
    public static func noSuchCore(_ index: Int, count: Int) -> RuntimeError {
        RuntimeError(.noSuchCore, "core \(index) does not exist (the runtime has \(count))")
    }
    /// The configuration named no CPU this process may run on.
    public static func noCPUs(_ message: String) -> RuntimeError { RuntimeError(.noCPUs, message) }
    /// The call must be made on a core's thread.
    public static func notOnCore(_ message: String) -> RuntimeError { RuntimeError(.notOnCore, message) }

    /// True for ``shutDown(_:)``.
    public var isShutDown: Bool { kind == .shutDown }

    public static func == (lhs: RuntimeError, rhs: RuntimeError) -> Bool { lhs.kind == rhs.kind }
    public func hash(into hasher: inout Hasher) { hasher.combine(kind) }
    public var description: String { message }
}
