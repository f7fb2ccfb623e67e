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
    /// The dial in progress per peer: a task of the manager's, which callers wait for.
    private var dialing: [PeerAddress: SharedDial] = [:]
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
    /// The dial belongs to the manager, not to the caller that started it: a caller that gives
    /// up (cancelled, or past `deadline`) stops waiting, and the dial goes on for the others,
    /// its connection then pooled for the next call.
    ///
    /// - Parameter deadline: when to stop waiting for a dial; nil waits for its outcome (which
    ///   the backoff's attempts and ``Backoff/overallTimeout`` bound).
    /// - Throws: ``PoolError`` `.unavailable` when every attempt failed or the peer fails fast,
    ///   `.unresolvable` for a name that does not resolve, `.timedOut` past `deadline`;
    ///   `CancellationError`; `RuntimeError.notOnCore` off the manager's core.
    public func connection(to peer: PeerAddress, deadline: Deadline? = nil) async throws -> Connection {
        while true {
            if let connection = pool.connection(for: peer) { return connection }
            if let failure = failing[peer], clock.now() < failure.until {
                throw PoolError(.unavailable, "\(peer) is failing fast until its next probe (last error: \(failure.error))")
            }
            let dial = try dialing[peer] ?? startDial(peer)
            if dial.outcome == nil {
                do {
                    _ = try await suspendOnCore(core, deadline: deadline) { handle in
                        if dial.outcome != nil { core.resume(handle) } else { dial.waiters.append(handle) }
                    }
                } catch let error as IOError where error.isTimeout {
                    throw PoolError(.timedOut, "no connection to \(peer) by the deadline (a dial goes on)")
                }
            }
            // Its connection is in the pool now (taken on the next turn of the loop); its error
            // is every waiter's.
            if case .failure(let error)? = dial.outcome { throw error }
        }
    }

    /// Forgets `connection` (it failed, closed or got a go-away): the next call dials again.
    public func invalidate(_ connection: Connection) {
        pool.remove(connection)
    }

    /// One dial for every caller that wants `peer` meanwhile: its outcome, and who waits for it.
    final class SharedDial {
        var waiters: [CoreWakeHandle] = []
        var outcome: Result<Void, any Error>?
    }

    /// Starts the shared dial of `peer` in a task of its own on the core.
    private func startDial(_ peer: PeerAddress) throws -> SharedDial {
        let dial = SharedDial()
        try core.spawn { [self] in
            do {
                pool.add(try await dialWithRetries(peer), for: peer)
                if failing.removeValue(forKey: peer) != nil {
                    logger.info("pool: reconnected", metadata: ["peer": "\(peer)"])
                }
                dial.outcome = .success(())
            } catch {
                // A dial cancelled by the core's stop says nothing of the peer: no fail-fast.
                if !(error is CancellationError) {
                    let failures = (failing[peer]?.failures ?? 0) + 1
                    failing[peer] = (failures, clock.now() + backoff.failFast(after: failures), "\(error)")
                }
                dial.outcome = .failure(error)
            }
            dialing[peer] = nil
            for waiter in dial.waiters { core.resume(waiter) }
        }
        dialing[peer] = dial
        return dial
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
