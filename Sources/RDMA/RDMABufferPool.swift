public import NetTransport

/// Registered memory of one core on one device, as a buffer pool: a message built in a buffer
/// from it is sent without a copy. Buffers come from the core's slab (``SlabAllocator``), through
/// a ``PooledBufferAllocator`` whose size classes are the slab's: up to
/// ``RDMATransport/Configuration/pooledBytesPerClass`` of chunks per class are kept and handed
/// out again once no message refers to them (no allocation per buffer); past that a buffer gets
/// a chunk of its own, back to the slab when it goes. A request above the largest size class,
/// or when the slab is full, gets plain memory, which a send then copies (or sends inline).
public final class RDMABufferPool: BufferPool {
    /// The slab under the pool (for tests and metrics).
    public let slab: SlabAllocator
    let allocator: PooledBufferAllocator

    init(slab: SlabAllocator, lender: SlabChunkLender, pooledBytesPerClass: Int) {
        self.slab = slab
        // A slab without classes (none configured above zero) lends nothing: one class kept empty.
        let classes = slab.sizeClasses
        allocator = PooledBufferAllocator(
            configuration: .init(
                sizeClasses: classes.isEmpty ? [1] : classes,
                maximumPerClass: { size in classes.isEmpty ? 0 : pooledBytesPerClass / size }),
            backing: { size in (try? slab.allocate(size))?.map(lender.storage(over:)) })
    }

    /// A buffer of at least `capacity` bytes: a slab chunk when one fits and is free, else plain
    /// memory (sent by copy or inline).
    public func allocate(capacity: Int) -> WritableBuffer {
        allocator.allocate(capacity: capacity)
    }

    /// Counters of the pool's reuse (``PooledBufferAllocator/Statistics``).
    public var statistics: PooledBufferAllocator.Statistics { allocator.statistics }

    /// Whether every byte of `message` lies in this pool's registered memory.
    public func isRegistered(_ message: Message) -> Bool {
        guard let base = message.baseAddress else { return false }
        return slab.localKey(for: base, count: message.count) != nil
    }
}
