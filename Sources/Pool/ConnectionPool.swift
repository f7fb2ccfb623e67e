public import NetRuntime
import CoreMetrics
public import Logging

/// Connections of one core, keyed by peer (non-Sendable, no locks: it lives on its core).
///
/// - A connection is handed out only while usable, younger than ``Configuration/maximumLifetime``
///   and used within ``Configuration/idleTimeout``; the rest are evicted by ``sweep()`` (run it
///   periodically with ``runSweeper(on:every:)``) or when met.
/// - At most ``Configuration/maximumPerKey`` connections per key and ``Configuration/maximumTotal``
///   in all: adding past a limit evicts the least recently used.
/// - With several connections per key, ``connection(for:)`` hands them out in turn.
public final class ConnectionPool<Key: Hashable & Sendable, Connection: PooledConnection> {
    /// Limits and lifetimes.
    public struct Configuration: Sendable {
        /// Evict a connection unused this long. Default 60 s.
        public var idleTimeout: Duration = .seconds(60)
        /// Evict a connection this old, used or not. Default 30 min.
        public var maximumLifetime: Duration = .seconds(1800)
        /// Connections per key. Default 1.
        public var maximumPerKey = 1
        /// Connections in all. Default 1,024.
        public var maximumTotal = 1024
        /// How often a sweeper started for the pool (``runSweeper(on:every:)``, as
        /// `RPCClient` does on each core) evicts what has expired. Default 5 s; at least 10 ms.
        public var sweepInterval: Duration = .seconds(5)
        /// The defaults.
        public init() {}
    }

    private struct Entry {
        let connection: Connection
        let created: Deadline
        var lastUsed: Deadline
    }

    /// The pool's settings.
    public let configuration: Configuration
    let clock: any PoolClock
    let logger: Logger
    private var entries: [Key: [Entry]] = [:]
    private var turn: [Key: Int] = [:]
    private let sizeGauge: Gauge
    private let evictions: Counter

    /// An empty pool.
    public init(configuration: Configuration = .init(), clock: any PoolClock = MonotonicPoolClock(), logger: Logger = Logger(label: "swift-net.pool")) {
        self.configuration = configuration
        self.clock = clock
        self.logger = logger
        self.sizeGauge = Gauge(label: "net_pool_connections")
        self.evictions = Counter(label: "net_pool_evictions_total")
    }

    /// Connections held.
    public var count: Int { entries.values.reduce(0) { $0 + $1.count } }

    /// Connections held for `key`.
    public func count(for key: Key) -> Int { entries[key]?.count ?? 0 }

    /// Whether the pool has room for another connection to `key` without evicting one of its own.
    public func wantsMore(for key: Key) -> Bool { count(for: key) < configuration.maximumPerKey }

    /// A usable connection to `key` (in turn, if there are several), or nil. Expired or unusable
    /// connections met on the way are evicted.
    public func connection(for key: Key) -> Connection? {
        guard var list = entries[key], !list.isEmpty else { return nil }
        let now = clock.now()
        var evicted: [Connection] = []
        list.removeAll { entry in
            let dead = !isAlive(entry, now: now)
            if dead { evicted.append(entry.connection) }
            return dead
        }
        closeEvicted(evicted, reason: "expired or unusable")
        guard !list.isEmpty else {
            drop(key)
            return nil
        }
        let index = (turn[key] ?? 0) % list.count
        turn[key] = index + 1
        list[index].lastUsed = now
        entries[key] = list
        return list[index].connection
    }

    /// Adds a connection to `key`, evicting the least recently used past a limit.
    public func add(_ connection: Connection, for key: Key) {
        let now = clock.now()
        var evicted: [Connection] = []
        var list = entries[key] ?? []
        while list.count >= max(configuration.maximumPerKey, 1) {
            let oldest = list.indices.min { list[$0].lastUsed < list[$1].lastUsed }!
            evicted.append(list.remove(at: oldest).connection)
        }
        list.append(Entry(connection: connection, created: now, lastUsed: now))
        entries[key] = list
        while count > max(configuration.maximumTotal, 1) {
            guard let (victimKey, index) = leastRecentlyUsed(excluding: connection) else { break }
            evicted.append(entries[victimKey]!.remove(at: index).connection)
            if entries[victimKey]!.isEmpty { drop(victimKey) }
        }
        closeEvicted(evicted, reason: "limit")
        sizeGauge.record(count)
    }

    /// Removes `connection` (it failed, closed or got a go-away) so the next call dials again.
    public func remove(_ connection: Connection) {
        for (key, list) in entries {
            if let index = list.firstIndex(where: { $0.connection === connection }) {
                entries[key]!.remove(at: index)
                if entries[key]!.isEmpty { drop(key) }
                sizeGauge.record(count)
                return
            }
        }
    }

    /// Evicts every connection that is unusable, idle too long (no use, no work in flight) or
    /// too old; returns how many. Evicted connections close once their work in flight ends.
    @discardableResult
    public func sweep() -> Int {
        let now = clock.now()
        var evicted: [Connection] = []
        for (key, list) in entries {
            let alive = list.filter { isAlive($0, now: now) }
            if alive.count != list.count {
                evicted += list.filter { !isAlive($0, now: now) }.map(\.connection)
                if alive.isEmpty { drop(key) } else { entries[key] = alive }
            }
        }
        closeEvicted(evicted, reason: "sweep")
        sizeGauge.record(count)
        return evicted.count
    }

    /// Sweeps every `interval` (by default ``Configuration/sweepInterval``) on the core's timer
    /// until the task is cancelled.
    public func runSweeper(on core: Core, every interval: Duration? = nil) async {
        // A zero or negative interval would have the sweeper spin on its core.
        let interval = max(interval ?? configuration.sweepInterval, .milliseconds(10))
        while !Task.isCancelled {
            do { try await core.sleep(for: interval) } catch { return }
            sweep()
        }
    }

    /// Closes and forgets every connection.
    public func closeAll() async {
        let all = entries.values.flatMap { $0.map(\.connection) }
        entries.removeAll()
        turn.removeAll()
        for connection in all { await connection.close() }
        sizeGauge.record(0)
    }

    /// Forgets `key` once it has no connection left (its turn too: keys come and go with peers).
    private func drop(_ key: Key) {
        entries[key] = nil
        turn[key] = nil
    }

    private func isAlive(_ entry: Entry, now: Deadline) -> Bool {
        entry.connection.isUsable
            && now < entry.created + configuration.maximumLifetime
            && (now < entry.lastUsed + configuration.idleTimeout || entry.connection.hasWorkInFlight)
    }

    private func leastRecentlyUsed(excluding connection: Connection) -> (Key, Int)? {
        var best: (Key, Int, Deadline)?
        for (key, list) in entries {
            for (index, entry) in list.enumerated() where entry.connection !== connection {
                if best == nil || entry.lastUsed < best!.2 { best = (key, index, entry.lastUsed) }
            }
        }
        return best.map { ($0.0, $0.1) }
    }

    private func closeEvicted(_ evicted: [Connection], reason: String) {
        guard !evicted.isEmpty else { return }
        evictions.increment(by: evicted.count)
        logger.debug("pool: evicted connections", metadata: ["count": "\(evicted.count)", "reason": "\(reason)"])
        // Closing awaits; eviction does not: each close runs on this core after the caller
        // yields, once that connection's calls in flight have ended (eviction fails no call).
        guard let executor = Core.currentExecutor else { return }
        for connection in evicted {
            nonisolated(unsafe) let closing = connection  // Unsafe boundary: a core-local connection goes to a task that prefers this core, so it stays on its thread.
            Task(executorPreference: executor) { @concurrent in await closing.closeWhenIdle() }
        }
    }
}
