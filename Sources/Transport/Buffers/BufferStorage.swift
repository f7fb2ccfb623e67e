/// Memory that messages share: a pointer, a capacity, and what to do when no one holds it.
///
/// Storage is reference counted by Swift. Pooled storage stays owned by its pool, which hands
/// it out again once only the pool holds it (``PooledBufferAllocator``): no allocation and no
/// lock per buffer at steady state. Storage can also wrap memory from elsewhere, such as an
/// RDMA-registered slab chunk, with a release action run when the last holder lets go.
public final class BufferStorage {
    /// The first byte.
    public let base: UnsafeMutableRawPointer
    /// Bytes available from ``base``.
    public let capacity: Int
    // A `var` only so that the deinit can move it out (a `let` is copied there: a retain and a
    // release of the owner per storage); nothing else writes it, and no other thread can see
    // the storage in its deinit, so it needs no dynamic exclusivity check.
    @exclusivity(unchecked) private var release: Release

    enum Release {
        /// Owned by a pool, which deallocates it when the pool goes.
        case pooled
        /// Allocated for one buffer; deallocated with the storage.
        case deallocate
        /// Someone else's memory; `action` runs when the storage goes.
        case custom(() -> Void)
        /// Memory lent by `owner`, given back with `tag` when the storage goes.
        case owned(any BufferStorageOwner, tag: Int)
    }

    init(base: UnsafeMutableRawPointer, capacity: Int, release: Release) {
        self.base = base
        self.capacity = max(capacity, 0)  // a negative count from a caller is no memory, not a trap later
        self.release = release
    }

    /// Allocates storage of its own (not pooled), aligned to 16 bytes.
    public convenience init(allocating capacity: Int) {
        let base = UnsafeMutableRawPointer.allocate(byteCount: max(capacity, 1), alignment: 16)
        self.init(base: base, capacity: capacity, release: .deallocate)
    }

    /// Wraps memory owned elsewhere; `onRelease` runs once, when no buffer refers to it any more
    /// (for example to return an RDMA slab chunk to its free list, or repost a receive).
    public convenience init(wrapping base: UnsafeMutableRawPointer, capacity: Int, onRelease: @escaping () -> Void) {
        self.init(base: base, capacity: capacity, release: .custom(onRelease))
    }

    /// Wraps memory lent by `owner`, which gets it back through
    /// ``BufferStorageOwner/storageReleased(_:tag:)`` once no buffer refers to it. Unlike a
    /// closure, this costs no allocation besides the storage itself.
    public convenience init(wrapping base: UnsafeMutableRawPointer, capacity: Int, owner: any BufferStorageOwner, tag: Int) {
        self.init(base: base, capacity: capacity, release: .owned(owner, tag: tag))
    }

    deinit {
        var taken = Release.pooled
        swap(&taken, &release)
        switch consume taken {
        case .pooled, .deallocate: base.deallocate()
        case .custom(let action): action()
        case .owned(let owner, let tag): owner.storageReleased(base, tag: tag)
        }
    }
}
