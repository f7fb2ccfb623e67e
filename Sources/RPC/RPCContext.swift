public import NetRuntime

/// What a handler knows about its call.
public struct RPCContext: Sendable {
    /// The core the call runs on (the core that owns the connection).
    public let core: Core
    /// The caller's address.
    public let peer: SocketAddress?
    /// The call's deadline, if the caller set one; past it the handler's task is cancelled and
    /// the caller gets ``RPCError/Code/deadlineExceeded``.
    public let deadline: Deadline?
    /// The request's metadata.
    public let metadata: RPCMetadata
    /// The method as the request named it.
    public let method: MethodKey
    /// The call's ID on its connection.
    public let callID: UInt64

    /// Whether the call has been cancelled (by the caller, its deadline or a shutdown).
    public var isCancelled: Bool { Task.isCancelled }

    /// Throws `CancellationError` once the call is cancelled.
    public func checkCancellation() throws { try Task.checkCancellation() }
}
