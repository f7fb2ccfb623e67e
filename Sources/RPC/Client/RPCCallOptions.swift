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

    /// Options with no deadline and no metadata.
    public init(deadline: Deadline? = nil, metadata: RPCMetadata = RPCMetadata(), byName: Bool = false) {
        self.deadline = deadline
        self.metadata = metadata
        self.byName = byName
    }

    /// Options with a deadline `timeout` from now.
    public static func timeout(_ timeout: Duration) -> RPCCallOptions {
        RPCCallOptions(deadline: .now + timeout)
    }
}
