public import NetPool
public import NetRuntime
public import NetTransport
import Synchronization

extension RPCConnection: PooledConnection {}

/// A Sendable handle for calling peers by address from any task.
///
/// On a core, a call uses that core's ``ConnectionManager`` (and so its pooled connections, one
/// dial for concurrent callers, backoff, fail-fast). Off the cores, the call hops to one of them
/// in turn and back (one cross-thread hop each way: see docs/BENCHMARKS.md for its cost); request
/// and response must then be Sendable.
public final class RPCClient<Dialer: TransportDialer>: Sendable {
    /// Makes the connections.
    public let dialer: Dialer
    /// Settings of every connection.
    public let configuration: RPCConfiguration
    /// The per-core pools' settings.
    public let poolConfiguration: ConnectionPool<PeerAddress, RPCConnection<Dialer.Connection>>.Configuration
    /// The reconnection schedule.
    public let backoff: Backoff
    /// The cores calls from off the cores are sent to, in turn.
    public let cores: [Core]
    private let next = Atomic<Int>(0)
    /// This client's key in each core's registry: unique for the process's life, where an
    /// object's address may be reused by a later client.
    private let key = RPCClientKey.next()

    /// A client dialling with `dialer` on `cores` (usually `runtime.cores`).
    public init(
        dialer: Dialer,
        cores: [Core],
        configuration: RPCConfiguration = .init(),
        pool: ConnectionPool<PeerAddress, RPCConnection<Dialer.Connection>>.Configuration = .init(),
        backoff: Backoff = Backoff()
    ) {
        precondition(!cores.isEmpty, "at least one core")
        self.dialer = dialer
        self.cores = cores
        self.configuration = configuration
        self.poolConfiguration = pool
        self.backoff = backoff
    }

    /// When the client goes, each core drops its manager and closes that manager's connections
    /// (a core that has stopped has closed them already).
    deinit {
        let key = self.key
        for core in cores {
            Task(executorPreference: core.executor) { @concurrent in
                guard let registry = try? core.local(ClientRegistry.self, { ClientRegistry() }),
                      let entry = registry.managers.removeValue(forKey: key)
                else { return }
                entry.sweeper?.cancel()
                await (entry.manager as? any ClosableManager)?.closeAll()
            }
        }
    }

    /// The connection manager of `core` for this client (made on first use). Call on `core`.
    public func manager(on core: Core) throws -> ConnectionManager<RPCConnection<Dialer.Connection>> {
        let registry = try core.local(ClientRegistry.self) { ClientRegistry() }
        if let manager = registry.managers[key]?.manager as? ConnectionManager<RPCConnection<Dialer.Connection>> { return manager }
        let (dialer, configuration) = (self.dialer, self.configuration)
        let manager = ConnectionManager<RPCConnection<Dialer.Connection>>(
            core: core, pool: poolConfiguration, backoff: backoff, logger: configuration.logger
        ) { address, core in
            try RPCConnection(try await dialer.dial(address, on: core), configuration: configuration)
        }
        // Expired connections close even if their peer is never called again.
        let sweeper = try? core.spawn { await manager.pool.runSweeper(on: core) }
        registry.managers[key] = .init(manager: manager, sweeper: sweeper)
        return manager
    }

    /// Calls `method` on `peer` from a task on one of the runtime's cores.
    public func call<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, to peer: PeerAddress, options: RPCCallOptions = .init()
    ) async throws(RPCError) -> Response {
        guard let core = cores.first(where: { $0.isCurrent }) else {
            throw RPCError(.unavailable, "RPCClient.call(_:_:to:) off the client's cores: use callFromAnywhere")
        }
        let manager: ConnectionManager<RPCConnection<Dialer.Connection>>
        let connection: RPCConnection<Dialer.Connection>
        do {
            manager = try self.manager(on: core)
            connection = try await manager.connection(to: peer, deadline: options.deadline)
        } catch let error as PoolError {
            throw RPCError(error.code == .timedOut ? .deadlineExceeded : .unavailable, error.message)
        } catch is CancellationError {
            throw RPCError(.cancelled, "the call was cancelled")
        } catch {
            throw RPCError(.unavailable, "\(error)")
        }
        do {
            let response = try await connection.call(method, request, options: options)
            if !connection.isUsable { manager.invalidate(connection) }
            return response
        } catch {
            if !connection.isUsable { manager.invalidate(connection) }
            throw error
        }
    }

    /// Calls `method` on `peer` from any task: on a core of this client directly, else by
    /// hopping to one of its cores in turn.
    public func callFromAnywhere<Request: Sendable, Response: Sendable>(
        _ method: RPCMethod<Request, Response>, _ request: Request, to peer: PeerAddress, options: RPCCallOptions = .init()
    ) async throws(RPCError) -> Response {
        if cores.contains(where: { $0.isCurrent }) {
            return try await call(method, request, to: peer, options: options)
        }
        let core = cores[next.add(1, ordering: .relaxed).oldValue % cores.count]
        let result: Result<Response, RPCError> = await withTaskExecutorPreference(core.executor) {
            await Self.callOnCore(self, method, request, peer, options)
        }
        return try result.get()
    }

    @concurrent
    private static func callOnCore<Request: Sendable, Response: Sendable>(
        _ client: RPCClient, _ method: RPCMethod<Request, Response>, _ request: Request, _ peer: PeerAddress, _ options: RPCCallOptions
    ) async -> Result<Response, RPCError> {
        do {
            return .success(try await client.call(method, request, to: peer, options: options))
        } catch {
            return .failure(error)
        }
    }
}

/// The per-core managers of every ``RPCClient`` (core-local), by client key.
final class ClientRegistry {
    struct Entry {
        let manager: AnyObject
        /// The task that sweeps the manager's pool, cancelled with the client.
        let sweeper: Task<Void, Never>?
    }
    var managers: [UInt64: Entry] = [:]
}

/// Keys of ``RPCClient``s, unique for the process's life.
enum RPCClientKey {
    private static let counter = Atomic<UInt64>(0)
    static func next() -> UInt64 { counter.add(1, ordering: .relaxed).newValue }
}

/// A manager whose connections can be closed without knowing its connection type.
protocol ClosableManager: AnyObject {
    func closeAll() async
}

extension ConnectionManager: ClosableManager {
    func closeAll() async { await pool.closeAll() }
}
