/// What the pool needs of a connection: whether it can still be handed out, and how to close it.
public protocol PooledConnection: AnyObject, SendableMetatype {
    /// False once closed, failed, or told by its peer to go away: never handed out again.
    var isUsable: Bool { get }
    /// Closes it (after eviction).
    func close() async
}
