public import NetRuntime
public import NetTransport

/// The buffer pool of TCP connections on one core: pooled memory in size classes, shared by
/// every connection of the core (received chunks come from it too).
public final class TCPBufferPool: BufferPool {
    /// The pool under it.
    public let allocator: PooledBufferAllocator

    /// A pool with the given size classes.
    public init(configuration: PooledBufferAllocator.Configuration = .init()) {
        allocator = PooledBufferAllocator(configuration: configuration)
    }

    /// The pool of `core`, made on first use.
    public static func on(_ core: Core) throws -> TCPBufferPool {
        try core.local(TCPBufferPool.self) { TCPBufferPool() }
    }

    public func allocate(capacity: Int) -> WritableBuffer {
        allocator.allocate(capacity: capacity)
    }
}
