public import NetRuntime

/// Per-call settings.
public struct RPCCallOptions: Sendable {
    /// When the call fails with ``RPCError/Code/deadlineExceeded``; the server sees it too (as
    /// the time left) and cancels its handler past it.
    public var deadline: Deadline?
    /// Metadata sent with the request (trace context, ...).
    public var metadata = RPCMetadata()
    /// Name the method by its string name rather than its numeric ID.
    public var byName = false
    /// Whether cancelling the calling task ends the call (the default: it fails with
    /// ``RPCError/Code/cancelled`` and a cancel frame stops the handler).
    ///
    /// With `false`, the call ends only by its response, its deadline or the connection ending.
    /// Its wait then costs no cancellation handler, for which Swift adds and removes a record
    /// under the task's lock and switches executors twice: 6-20 % more calls a second and a
    /// 9-13 % shorter round trip on one core (docs/RPC.md). For calls that are never cancelled
    /// one by one: a fan-out bounded by a deadline, a replication stream.
    public var cancellable = true

    /// Options with no deadline and no metadata, cancellable with the calling task.
    public init(deadline: Deadline? = nil, metadata: RPCMetadata = RPCMetadata(), byName: Bool = false, cancellable: Bool = true) {
        self.deadline = deadline
        self.metadata = metadata
        self.byName = byName
        self.cancellable = cancellable
    }

    /// Options with a deadline `timeout` from now.
    public static func timeout(_ timeout: Duration) -> RPCCallOptions {
        RPCCallOptions(deadline: .now + timeout)
    }
}
