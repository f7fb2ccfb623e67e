public import NetRuntime
import CoreMetrics
public import Logging

/// Gives callers on one core a live connection to a peer: from the pool, or dialled once for
/// all concurrent callers (single flight), retried with exponential backoff and full jitter.
/// After a dial has failed every attempt, calls to that peer fail fast with
/// ``PoolError/Code/unavailable`` until its next probe time.
///
/// Non-Sendable: one manager per core, with its pool. NetPool imports no driver: the application
/// gives the dial function (for example a `TCPDialer` wrapped into an RPC connection).
public final class ConnectionManager<Connection: PooledConnection> {
    /// Makes a connection to a resolved address on the core (a driver's dialer, usually).
    public typealias Dial = (SocketAddress, Core) async throws -> Connection

    /// The core it serves.
    public let core: Core
    /// Its connections.
    public let pool: ConnectionPool<PeerAddress, Connection>
    /// The retry schedule.
    public let backoff: Backoff
    let dial: Dial
    let clock: any PoolClock
    let logger: Logger
    private var random: any RandomNumberGenerator
    private var dialing: [PeerAddress: [CoreWakeHandle]] = [:]
    private var failing: [PeerAddress: (failures: Int, until: Deadline, error: String)] = [:]
    private let dials = Counter(label: "net_pool_dials_total")
    private let dialFailures = Counter(label: "net_pool_dial_failures_total")
    private let reconnects = Counter(label: "net_pool_reconnects_total")
    /// Dials started (attempts included), for tests and diagnostics.
    public private(set) var dialCount = 0
    /// Dials started per peer (attempts included): beyond the first, reconnects.
    public private(set) var dialCounts: [PeerAddress: Int] = [:]

    /// A manager for `core`, dialling with `dial`.
    public init(
        core: Core,
        pool: ConnectionPool<PeerAddress, Connection>.Configuration = .init(),
        backoff: Backoff = Backoff(),
        clock: any PoolClock = MonotonicPoolClock(),
        random: any RandomNumberGenerator = SystemRandomNumberGenerator(),
        logger: Logger = Logger(label: "swift-net.pool"),
        dial: @escaping Dial
    ) {
        self.core = core
        self.pool = ConnectionPool(configuration: pool, clock: clock, logger: logger)
        self.backoff = backoff
        self.dial = dial
        self.clock = clock
        self.random = random
        self.logger = logger
    }

    /// A usable connection to `peer`: pooled, or dialled now (one dial for all concurrent
    /// callers). Call on the manager's core.
    ///
    /// - Throws: ``PoolError`` `.unavailable` when every attempt failed or the peer fails fast,
    ///   `.unresolvable` for a name that does not resolve; `CancellationError`.
    public func connection(to peer: PeerAddress) async throws -> Connection {
        while true {
            if let connection = pool.connection(for: peer) { return connection }
            if let failure = failing[peer], clock.now() < failure.until {
                throw PoolError(.unavailable, "\(peer) is failing fast until its next probe (last error: \(failure.error))")
            }
            if dialing[peer] != nil {
                // Another caller is dialling this peer: wait for its outcome, then look again.
                _ = try await suspendOnCore(core) { dialing[peer]?.append($0) }
                continue
            }
            return try await dialForAll(peer)
        }
    }

    /// Forgets `connection` (it failed, closed or got a go-away): the next call dials again.
    public func invalidate(_ connection: Connection) {
        pool.remove(connection)
    }

    private func dialForAll(_ peer: PeerAddress) async throws -> Connection {
        dialing[peer] = []
        defer {
            for waiter in dialing.removeValue(forKey: peer) ?? [] { core.resume(waiter) }
        }
        do {
            let connection = try await dialWithRetries(peer)
            pool.add(connection, for: peer)
            if failing.removeValue(forKey: peer) != nil {
                logger.info("pool: reconnected", metadata: ["peer": "\(peer)"])
            }
            return connection
        } catch {
            let failures = (failing[peer]?.failures ?? 0) + 1
            failing[peer] = (failures, clock.now() + backoff.failFast(after: failures), "\(error)")
            throw error
        }
    }

    private func dialWithRetries(_ peer: PeerAddress) async throws -> Connection {
        let start = Deadline.now
        let address = try await peer.resolve()
        var lastError: (any Error)?
        for attempt in 0..<max(backoff.maximumAttempts, 1) {
            if attempt > 0 {
                var delay = backoff.delay(retry: attempt - 1, using: &random)
                if let overall = backoff.overallTimeout {
                    let left = (start + overall).remaining
                    if left <= .zero { break }
                    delay = min(delay, left)
                }
                try await core.sleep(for: delay)
                reconnects.increment()
            }
            dialCount += 1
            dialCounts[peer, default: 0] += 1
            dials.increment()
            do {
                let connection = try await dial(address, core)
                logger.debug("pool: dialled", metadata: ["peer": "\(peer)", "attempt": "\(attempt + 1)"])
                return connection
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                lastError = error
                dialFailures.increment()
                logger.debug("pool: dial failed", metadata: ["peer": "\(peer)", "attempt": "\(attempt + 1)", "error": "\(error)"])
            }
        }
        logger.info("pool: peer unavailable", metadata: ["peer": "\(peer)", "error": "\(lastError.map { "\($0)" } ?? "-")"])
        throw PoolError(.unavailable, "could not connect to \(peer): \(lastError.map { "\($0)" } ?? "out of time")", underlying: lastError)
    }
}
