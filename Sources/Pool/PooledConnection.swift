/// What the pool needs of a connection: whether it can still be handed out, whether it is in
/// use, and how to close it.
public protocol PooledConnection: AnyObject, SendableMetatype {
    /// False once closed, failed, or told by its peer to go away: never handed out again.
    var isUsable: Bool { get }
    /// Whether work is in flight on it (calls waiting for their responses): it is in use then,
    /// however long ago it was handed out. Default: false.
    var hasWorkInFlight: Bool { get }
    /// Closes it at once (``ConnectionPool/closeAll()``).
    func close() async
    /// Closes it once its work in flight has ended: how an evicted connection is closed, so
    /// that eviction (an idle timeout, a lifetime, a limit, a go-away) fails no call. Default:
    /// ``close()``.
    func closeWhenIdle() async
}

extension PooledConnection {
    public var hasWorkInFlight: Bool { false }
    public func closeWhenIdle() async { await close() }
}
