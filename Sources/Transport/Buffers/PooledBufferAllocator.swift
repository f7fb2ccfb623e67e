/// A per-core pool of buffer storage in size classes: no lock (it lives on one core) and no heap
/// allocation per buffer at steady state.
///
/// Each class keeps the storage objects it made. To hand one out it looks, from where it last
/// stopped, for one that only the pool still holds (`isKnownUniquelyReferenced`): buffers are
/// mostly released in the order they were taken, so the next one is usually free. A class that
/// has made its maximum hands out unpooled storage, freed when dropped. Requests above the
/// largest class get storage of their own size.
///
/// Pooled storage is plain memory unless a ``Backing`` makes it (an RDMA core's pool keeps
/// registered slab chunks this way).
public final class PooledBufferAllocator: BufferPool {
    /// Makes storage of a size class (`size` is the class's size), or returns nil when it cannot
    /// (the buffer then gets plain unpooled memory, as it does when the storage made is smaller
    /// than `size`). Storage the class keeps is released only
    /// when the pool goes; storage made past the class's maximum is not kept, and is released
    /// when its last buffer goes.
    public typealias Backing = (_ size: Int) -> BufferStorage?

    /// Size classes and how much each may keep.
    public struct Configuration: Sendable {
        /// Storage sizes, ascending. Default 256 B, 4 KiB, 64 KiB, and 1 MiB + 4 KiB: the largest
        /// holds a 1 MiB payload with the headers the layers above add to it (a frame of one, an
        /// RPC request or response, is a few bytes over 1 MiB, and would otherwise get memory of
        /// its own, allocated and freed for every message).
        public var sizeClasses: [Int]
        /// Storage objects a class may own at most; past it, buffers are not pooled. Default 4096
        /// for classes up to 4 KiB, 256 for 64 KiB, 32 above (about 80 MiB in all).
        public var maximumPerClass: @Sendable (Int) -> Int

        /// The defaults.
        public init(
            sizeClasses: [Int] = [256, 4096, 64 * 1024, 1024 * 1024 + 4096],
            maximumPerClass: @escaping @Sendable (Int) -> Int = { size in
                size <= 4096 ? 4096 : size <= 64 * 1024 ? 256 : 32
            }
        ) {
            precondition(!sizeClasses.isEmpty && sizeClasses == sizeClasses.sorted(), "size classes must be ascending")
            self.sizeClasses = sizeClasses
            self.maximumPerClass = maximumPerClass
        }
    }

    /// Counters for tests and metrics.
    public struct Statistics: Sendable, Hashable {
        /// Storage objects created for the pool.
        public var created = 0
        /// Buffers served by reusing pooled storage.
        public var reused = 0
        /// Buffers served with unpooled storage (class full, or larger than every class).
        public var unpooled = 0
    }

    private struct SizeClass {
        let size: Int
        let maximum: Int
        var storages: [BufferStorage] = []
        var cursor = 0
    }

    // Non-Sendable, so confined to its core by the compiler: dynamic exclusivity checks on these
    // (taken on every buffer handed out) would buy nothing.
    @exclusivity(unchecked) private var classes: [SizeClass]
    /// The pool's counters.
    @exclusivity(unchecked) public private(set) var statistics = Statistics()
    private let backing: Backing?

    /// A pool with the given size classes, over plain memory or over what `backing` makes.
    public init(configuration: Configuration = Configuration(), backing: Backing? = nil) {
        classes = configuration.sizeClasses.map { SizeClass(size: $0, maximum: configuration.maximumPerClass($0)) }
        self.backing = backing
    }

    /// The largest pooled size.
    public var largestClass: Int { classes.last!.size } // '!': the configuration checks non-empty

    public func allocate(capacity: Int) -> WritableBuffer {
        WritableBuffer(storage: storage(capacity: capacity))
    }

    /// Storage of at least `capacity` bytes that no one else holds.
    public func storage(capacity: Int) -> BufferStorage {
        guard let index = classes.firstIndex(where: { $0.size >= capacity }) else {
            statistics.unpooled += 1
            return BufferStorage(allocating: capacity)
        }
        return take(from: index)
    }

    private func take(from index: Int) -> BufferStorage {
        let count = classes[index].storages.count
        var position = classes[index].cursor
        for _ in 0..<count {
            if position >= count { position = 0 }
            if isKnownUniquelyReferenced(&classes[index].storages[position]) {
                classes[index].cursor = position + 1
                statistics.reused += 1
                return classes[index].storages[position]
            }
            position += 1
        }
        let size = classes[index].size
        // Past the maximum the storage is not kept: it gives its memory back when dropped.
        guard count < classes[index].maximum else {
            statistics.unpooled += 1
            return make(size, kept: false) ?? BufferStorage(allocating: size)
        }
        guard let storage = make(size, kept: true) else {
            statistics.unpooled += 1
            return BufferStorage(allocating: size)
        }
        classes[index].storages.append(storage)
        statistics.created += 1
        return storage
    }

    /// New storage of a class's `size`: the backing's (nil when it cannot make it, or makes less
    /// than `size`), or plain memory, owned by the pool when `kept`.
    private func make(_ size: Int, kept: Bool) -> BufferStorage? {
        guard let backing else {
            return kept
                ? BufferStorage(base: .allocate(byteCount: size, alignment: 64), capacity: size, release: .pooled)
                : BufferStorage(allocating: size)
        }
        guard let storage = backing(size), storage.capacity >= size else { return nil }
        return storage
    }

    /// Storage objects the pool owns, in use or free.
    public var pooledCount: Int { classes.reduce(0) { $0 + $1.storages.count } }
}
