public import NetTransport

/// Registrations of memory from elsewhere (buffers not from the core's slab), kept so that sending
/// the same buffer again, or reading into it again, does not register memory per call. Registering
/// memory is a system call that pins pages (tens of microseconds and more), so it is paid once per
/// buffer, not once per message.
///
/// An entry holds its buffer's storage strongly: memory cannot be freed, and its address reused by
/// other memory, while a registration of it lives (the classic stale-registration bug of caches
/// keyed by address). Entries are evicted least recently used first, past ``Limits`` (entries and
/// pinned bytes, which count against `RLIMIT_MEMLOCK`); an entry in use by a posted work request
/// (``pin(_:)``) is never evicted. Evicting deregisters, which also revokes any remote key handed
/// out for it: a peer still using it gets an access error, never someone else's memory.
///
/// Pure bookkeeping over two closures, so it is tested without a device. Not thread-safe: it
/// belongs to one core.
public final class RegistrationCache {
    /// How much the cache may hold.
    public struct Limits: Sendable, Hashable {
        /// Registrations kept at most. Default 256.
        public var maximumEntries: Int
        /// Bytes kept registered at most (pinned memory). Default 64 MiB.
        public var maximumBytes: Int

        /// Limits; the defaults suit a few dozen large application buffers per core.
        public init(maximumEntries: Int = 256, maximumBytes: Int = 64 << 20) {
            self.maximumEntries = maximumEntries
            self.maximumBytes = maximumBytes
        }

        /// The defaults.
        public static var defaults: Limits { Limits() }
    }

    /// The keys the NIC knows a registration by.
    public struct Keys: Sendable, Hashable {
        /// For local work requests.
        public let localKey: UInt32
        /// For a peer's one-sided access.
        public let remoteKey: UInt32

        /// Keys.
        public init(localKey: UInt32, remoteKey: UInt32) {
            self.localKey = localKey
            self.remoteKey = remoteKey
        }
    }

    /// A registration as the device made it: keys, and a handle to deregister it by.
    public struct Registration {
        /// Its keys.
        public let keys: Keys
        /// Passed back to the deregistration (for the device, its `ibv_mr`).
        public let handle: UnsafeMutableRawPointer?

        /// A registration.
        public init(keys: Keys, handle: UnsafeMutableRawPointer?) {
            self.keys = keys
            self.handle = handle
        }
    }

    /// Counters for tests and metrics.
    public struct Statistics: Sendable, Hashable {
        /// Lookups that found a registration.
        public var hits = 0
        /// Registrations made.
        public var registrations = 0
        /// Registrations dropped to stay within the limits.
        public var evictions = 0
        /// Registrations that failed (for example past `RLIMIT_MEMLOCK`).
        public var failures = 0
    }

    private final class Entry {
        let storage: BufferStorage
        let registration: Registration
        var lastUse: UInt64
        var pins = 0
        init(storage: BufferStorage, registration: Registration, lastUse: UInt64) {
            self.storage = storage
            self.registration = registration
            self.lastUse = lastUse
        }
    }

    /// The limits it keeps to.
    public let limits: Limits
    private let register: (UnsafeMutableRawPointer, Int) throws -> Registration
    private let deregister: (Registration) -> Void
    private var entries: [ObjectIdentifier: Entry] = [:]
    private var clock: UInt64 = 0
    /// Bytes registered now.
    public private(set) var registeredBytes = 0
    /// The cache's counters.
    public private(set) var statistics = Statistics()

    /// A cache that registers with `register` (address, length) and deregisters with `deregister`.
    public init(limits: Limits = .defaults,
                register: @escaping (UnsafeMutableRawPointer, Int) throws -> Registration,
                deregister: @escaping (Registration) -> Void) {
        self.limits = Limits(maximumEntries: max(1, limits.maximumEntries), maximumBytes: max(0, limits.maximumBytes))
        self.register = register
        self.deregister = deregister
    }

    deinit {
        for entry in entries.values { deregister(entry.registration) }
    }

    /// Registrations held now.
    public var count: Int { entries.count }

    /// The keys of `storage`'s whole memory, registering it on first use.
    ///
    /// - Throws: what the registration throws (the device names `RLIMIT_MEMLOCK` when pinning is
    ///   refused), or ``TransportError/Code/resourceExhausted`` when the storage alone is larger
    ///   than the cache may hold.
    public func keys(for storage: BufferStorage) throws -> Keys {
        clock &+= 1
        let id = ObjectIdentifier(storage)
        if let entry = entries[id] {
            entry.lastUse = clock
            statistics.hits += 1
            return entry.registration.keys
        }
        guard storage.capacity <= limits.maximumBytes else {
            statistics.failures += 1
            throw TransportError(.resourceExhausted,
                                 "a buffer of \(storage.capacity) bytes is larger than the registration cache (\(limits.maximumBytes) bytes)")
        }
        evict(toFit: storage.capacity)
        let registration: Registration
        do {
            registration = try register(storage.base, storage.capacity)
        } catch {
            statistics.failures += 1
            throw error
        }
        entries[id] = Entry(storage: storage, registration: registration, lastUse: clock)
        registeredBytes += storage.capacity
        statistics.registrations += 1
        return registration.keys
    }

    /// Keeps `storage`'s registration while a work request uses it (it must be cached).
    public func pin(_ storage: BufferStorage) {
        entries[ObjectIdentifier(storage)]?.pins += 1
    }

    /// Ends one ``pin(_:)``.
    public func unpin(_ storage: BufferStorage) {
        guard let entry = entries[ObjectIdentifier(storage)], entry.pins > 0 else { return }
        entry.pins -= 1
    }

    /// Drops every registration, pinned or not (the device is going away).
    public func removeAll() {
        for (id, entry) in entries { remove(id, entry) }
    }

    /// Evicts least recently used, unpinned entries until `bytes` more fit in the limits (or
    /// nothing more can go: pinned entries stay, and the cache is then over its limit for a while).
    private func evict(toFit bytes: Int) {
        while entries.count + 1 > limits.maximumEntries || registeredBytes + bytes > limits.maximumBytes {
            guard let (id, entry) = entries.filter({ $0.value.pins == 0 }).min(by: { $0.value.lastUse < $1.value.lastUse }) else {
                return
            }
            remove(id, entry)
            statistics.evictions += 1
        }
    }

    private func remove(_ id: ObjectIdentifier, _ entry: Entry) {
        entries.removeValue(forKey: id)
        registeredBytes -= entry.storage.capacity
        deregister(entry.registration)
    }
}
