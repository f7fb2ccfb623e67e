/// Carves a few large memory regions into fixed-size chunks, in size classes, with a free list per
/// class: the bookkeeping of a core's registered memory, kept apart from the device so that it
/// can be tested anywhere.
///
/// Regions are made on demand by `makeRegion` (the device context registers them with the NIC;
/// tests use plain memory), up to ``Configuration/maximumRegionsPerClass`` per class, and live
/// as long as the allocator. Not thread-safe: it belongs to one core.
public final class SlabAllocator {
    /// Size classes and how much memory each may take.
    public struct Configuration: Sendable, Hashable {
        /// Chunk sizes, ascending. Default 4 KiB, 64 KiB and 1 MiB + 4 KiB: the largest holds a
        /// 1 MiB payload with the headers the layers above add to it (an RPC request or response
        /// of one is a few bytes over 1 MiB, and would otherwise be read into memory registered
        /// for it alone, registered and deregistered for every message).
        public var sizeClasses: [Int]
        /// Bytes of one region (one registration). Default 16 MiB; raised to the class size for
        /// classes larger than it.
        public var regionSize: Int
        /// Regions a class may make at most. Default 8 (up to 128 MiB per class at the default
        /// region size).
        public var maximumRegionsPerClass: Int

        /// A configuration; the defaults suit a core with a few hundred connections.
        public init(sizeClasses: [Int] = [4096, 64 * 1024, 1024 * 1024 + 4096], regionSize: Int = 16 * 1024 * 1024,
                    maximumRegionsPerClass: Int = 8) {
            self.sizeClasses = sizeClasses
            self.regionSize = regionSize
            self.maximumRegionsPerClass = maximumRegionsPerClass
        }

        /// The defaults.
        public static var defaults: Configuration { Configuration() }
    }

    /// One region: where it starts, its size, and the key the NIC knows it by.
    public struct Region: Hashable {
        /// The first byte.
        public let base: UnsafeMutableRawPointer
        /// Its size in bytes.
        public let size: Int
        /// The local key of its registration (0 for unregistered memory).
        public let localKey: UInt32
        /// The remote key of its registration (0 for unregistered memory).
        public let remoteKey: UInt32

        /// A region.
        public init(base: UnsafeMutableRawPointer, size: Int, localKey: UInt32, remoteKey: UInt32) {
            self.base = base
            self.size = size
            self.localKey = localKey
            self.remoteKey = remoteKey
        }

        func contains(_ address: UnsafeRawPointer, count: Int) -> Bool {
            let start = UnsafeRawPointer(base)
            return address >= start && count <= size && address <= start + (size - count)
        }
    }

    /// A chunk handed out: give it back with ``free(_:)`` exactly once.
    public struct Chunk: Hashable {
        /// The first byte.
        public let base: UnsafeMutableRawPointer
        /// Its size (its class's size).
        public let size: Int
        /// The local key of the region it lies in.
        public let localKey: UInt32
        let sizeClass: Int
        let region: Int
        let index: Int

        /// Where the chunk lies, in one integer (class, region, index), for ``SlabAllocator/free(tag:)``.
        var tag: Int { sizeClass << 56 | region << 32 | index }
    }

    /// Counters for tests and metrics.
    public struct Statistics: Sendable, Hashable {
        /// Chunks handed out and not yet freed.
        public var inUse = 0
        /// Regions made.
        public var regions = 0
        /// Requests refused (no class large enough, or the class is full).
        public var refused = 0
    }

    /// Makes a region of the given size, or throws (for example when registration fails).
    public typealias RegionMaker = (_ size: Int) throws -> Region

    private struct SizeClass {
        let size: Int
        let regionSize: Int
        var regions: [Region] = []
        /// Free chunks, as `region << 32 | index`; a stack, so recently freed (cache-warm)
        /// chunks go out first.
        var free: [Int] = []
        /// Whether each chunk is out, to refuse a double free.
        var out: [[Bool]] = []
    }

    /// The configuration it was made with.
    public let configuration: Configuration
    // Confined to its core (not Sendable): no dynamic exclusivity checks, which a loop that may
    // free chunks (a transport's reposts) otherwise begins on every pass, freeing or not.
    @exclusivity(unchecked) private var classes: [SizeClass]
    private let makeRegion: RegionMaker
    /// The allocator's counters.
    @exclusivity(unchecked) public private(set) var statistics = Statistics()

    /// An allocator whose regions come from `makeRegion`.
    public init(configuration: Configuration = .defaults, makeRegion: @escaping RegionMaker) {
        // At most 127 classes, 2^24 regions a class and 2^32 chunks a region: a chunk's tag holds them.
        let sizes = configuration.sizeClasses.filter { $0 > 0 }.sorted().prefix(127)
        self.configuration = configuration
        self.classes = sizes.map { size in
            SizeClass(size: size, regionSize: max(size, configuration.regionSize / size * size))
        }
        self.makeRegion = makeRegion
    }

    /// The chunk size a request for `size` bytes gets, or `nil` above every class.
    public func classSize(for size: Int) -> Int? {
        classes.first { $0.size >= size }?.size
    }

    /// The largest chunk size.
    public var largestClass: Int { classes.last?.size ?? 0 }

    /// The chunk sizes in use, ascending: the configuration's positive sizes, sorted, at most 127.
    public var sizeClasses: [Int] { classes.map(\.size) }

    /// A chunk of at least `size` bytes, or `nil` when no class is large enough or the class has
    /// made its maximum number of regions and has no chunk free.
    ///
    /// - Throws: what `makeRegion` throws when a new region is needed and cannot be made.
    public func allocate(_ size: Int) throws -> Chunk? {
        guard size >= 0, let c = classes.firstIndex(where: { $0.size >= size }) else {
            statistics.refused += 1
            return nil
        }
        if classes[c].free.isEmpty {
            guard classes[c].regions.count < min(configuration.maximumRegionsPerClass, 1 << 24) else {
                statistics.refused += 1
                return nil
            }
            try addRegion(to: c)
        }
        let packed = classes[c].free.removeLast()
        let (r, i) = (packed >> 32, packed & 0xFFFF_FFFF)
        classes[c].out[r][i] = true
        statistics.inUse += 1
        let region = classes[c].regions[r]
        return Chunk(base: region.base + i * classes[c].size, size: classes[c].size,
                     localKey: region.localKey, sizeClass: c, region: r, index: i)
    }

    /// Returns a chunk; a chunk that is not out (freed twice, or from elsewhere) is ignored and
    /// reported as `false`.
    @discardableResult
    public func free(_ chunk: Chunk) -> Bool {
        free(sizeClass: chunk.sizeClass, region: chunk.region, index: chunk.index)
    }

    /// Frees the chunk whose ``Chunk/tag`` is `tag`; false (and nothing changes) if no such
    /// chunk is out.
    @discardableResult
    func free(tag: Int) -> Bool {
        free(sizeClass: tag >> 56, region: (tag >> 32) & 0xFF_FFFF, index: tag & 0xFFFF_FFFF)
    }

    private func free(sizeClass c: Int, region r: Int, index i: Int) -> Bool {
        guard classes.indices.contains(c), classes[c].out.indices.contains(r),
              classes[c].out[r].indices.contains(i), classes[c].out[r][i]
        else { return false }
        classes[c].out[r][i] = false
        classes[c].free.append(r << 32 | i)
        statistics.inUse -= 1
        return true
    }

    /// The local key of the region holding `count` bytes at `address`, or `nil` when they are
    /// not all inside one region (then they must be copied, or sent inline, to be sent).
    public func localKey(for address: UnsafeRawPointer, count: Int) -> UInt32? {
        region(holding: address, count: count)?.localKey
    }

    /// The region holding `count` bytes at `address`, or `nil` when they are not all inside one.
    public func region(holding address: UnsafeRawPointer, count: Int) -> Region? {
        for sizeClass in classes {
            for region in sizeClass.regions where region.contains(address, count: count) {
                return region
            }
        }
        return nil
    }

    /// Every region made so far (to deregister them).
    public var regions: [Region] { classes.flatMap(\.regions) }

    /// Free chunks in the class of `size`, without making a region.
    public func freeCount(forClassOf size: Int) -> Int {
        classes.first { $0.size >= size }?.free.count ?? 0
    }

    private func addRegion(to c: Int) throws {
        let regionSize = classes[c].regionSize
        let region = try makeRegion(regionSize)
        precondition(region.size >= regionSize, "a region smaller than asked")
        let r = classes[c].regions.count
        classes[c].regions.append(region)
        let count = regionSize / classes[c].size
        classes[c].out.append([Bool](repeating: false, count: count))
        // Pushed in reverse, so chunks go out in address order.
        for i in stride(from: count - 1, through: 0, by: -1) { classes[c].free.append(r << 32 | i) }
        statistics.regions += 1
    }
}
