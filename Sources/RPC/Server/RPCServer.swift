import NetRuntime
public import NetTransport
import Logging
import CoreMetrics
import Synchronization

/// Serves registered services on any transport.
///
/// Run ``serve(_:)`` with a listener on every core that accepts connections (each connection is
/// served on the core that accepted it, and its calls run there); call ``beginDrain()`` and
/// await ``drained()`` to shut down gracefully: every connection gets a go-away, calls in flight
/// finish, new calls are refused with ``RPCError/Code/unavailable``.
public final class RPCServer: Sendable {
    let handlers: RPCHandlers
    let configuration: RPCConfiguration
    let metrics: [UInt32: MethodMetrics]
    /// Whether a metrics backend was bootstrapped before the server was made: only then are
    /// calls counted and timed. Without one every instrument is a no-op, and timing a call
    /// would cost two clock reads for nothing.
    let recordsMetrics: Bool
    private let state = Mutex(State())

    private struct State {
        var draining = false
        var cores: [ObjectIdentifier: Core] = [:]
        var connections = 0
        /// Who waits for a state: ``drained()``, ``waitForConnections(atMost:)``.
        var waiters: [(until: @Sendable (State) -> Bool, continuation: CheckedContinuation<Void, Never>)] = []
    }

    /// A server for `services`.
    public init(services: [any RPCService], configuration: RPCConfiguration = .init()) {
        var handlers = RPCHandlers()
        for service in services { service.register(into: &handlers) }
        self.handlers = handlers
        self.configuration = configuration
        self.metrics = handlers.byID.mapValues { MethodMetrics(side: "server", method: $0.name) }
        self.recordsMetrics = !(MetricsSystem.factory is NOOPMetricsHandler)
    }

    /// Whether ``beginDrain()`` has been called.
    public var isDraining: Bool { state.withLock { $0.draining } }

    /// Accepts connections from `listener` and serves each on this core until the listener is
    /// closed or the server drains. Call on the listener's core.
    public func serve<Listener: TransportListener>(_ listener: Listener) async throws {
        let core = listener.core
        guard core.isCurrent else { throw RuntimeError.notOnCore("RPCServer.serve off the listener's core") }
        let registry = try ServerRegistry.on(core)
        registry.listeners[ObjectIdentifier(self), default: []].append(ListenerCloser(listener))
        register(core)
        defer { registry.listeners[ObjectIdentifier(self)]?.removeAll { $0.id == ObjectIdentifier(listener) } }
        while !isDraining {
            let connection: Listener.Connection
            do {
                connection = try await listener.accept()
            } catch {
                if isDraining { return }
                throw error
            }
            try start(connection)
        }
    }

    /// Serves one connection, on its core, until it ends. Returns at once: the connection is
    /// served by tasks of its own.
    public func start<T: Transport>(_ connection: T) throws {
        guard connection.core.isCurrent else { throw RuntimeError.notOnCore("RPCServer.start off the connection's core") }
        guard !isDraining else {
            let closing = UnsafeTransfer(connection)
            Task(executorPreference: connection.core.executor) { @concurrent in await closing.value.close() }
            return
        }
        state.withLock { $0.connections += 1 }
        register(connection.core)
        let served = ServerConnection(connection, server: self)
        try ServerRegistry.on(connection.core).add(served, for: self)
        served.launch()
    }

    /// Starts a graceful shutdown: listeners close, every connection is sent a go-away, new
    /// calls are refused, calls in flight run to their end (or ``RPCConfiguration/drainTimeout``).
    /// Callable from any thread.
    public func beginDrain() {
        let cores = state.withLock { state -> [Core] in
            guard !state.draining else { return [] }
            state.draining = true
            return Array(state.cores.values)
        }
        let key = ObjectIdentifier(self)
        for core in cores {
            Task(executorPreference: core.executor) { @concurrent in
                guard let registry = try? ServerRegistry.on(core) else { return }
                await registry.drain(key)
            }
        }
        resumeWaiters()
    }

    /// Waits until every connection has ended after ``beginDrain()``.
    public func drained() async {
        await wait { $0.draining && $0.connections == 0 }
    }

    /// Waits until at most `count` connections are being served (at once if that is so now).
    public func waitForConnections(atMost count: Int) async {
        await wait { $0.connections <= count }
    }

    private func wait(until condition: @escaping @Sendable (State) -> Bool) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = state.withLock { state -> Bool in
                if condition(state) { return true }
                state.waiters.append((condition, continuation))
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Connections being served now.
    public var connectionCount: Int { state.withLock { $0.connections } }

    func connectionEnded() {
        state.withLock { $0.connections -= 1 }
        resumeWaiters()
    }

    /// Resumes the waiters whose state has come.
    private func resumeWaiters() {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            let now = state  // the conditions read a copy while the list changes
            var ready: [CheckedContinuation<Void, Never>] = []
            state.waiters.removeAll { waiter in
                guard waiter.until(now) else { return false }
                ready.append(waiter.continuation)
                return true
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }

    private func register(_ core: Core) {
        state.withLock { $0.cores[ObjectIdentifier(core)] = core }
    }
}

/// Moves a value the compiler cannot prove safe to move between tasks of one core.
struct UnsafeTransfer<Value>: @unchecked Sendable {  // Unsafe boundary: used only to hand a core's object to a task on the same core.
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// Closes a listener on a drain.
struct ListenerCloser {
    let id: ObjectIdentifier
    let close: () async -> Void
    init<L: TransportListener>(_ listener: L) {
        id = ObjectIdentifier(listener)
        close = { await listener.close() }
    }
}

/// The server connections and listeners of one core, by server (core-local).
final class ServerRegistry {
    var connections: [ObjectIdentifier: [ObjectIdentifier: any DrainableConnection]] = [:]
    var listeners: [ObjectIdentifier: [ListenerCloser]] = [:]

    static func on(_ core: Core) throws -> ServerRegistry { try core.local(ServerRegistry.self) { ServerRegistry() } }

    func add(_ connection: any DrainableConnection, for server: RPCServer) {
        connections[ObjectIdentifier(server), default: [:]][ObjectIdentifier(connection)] = connection
    }

    func remove(_ connection: any DrainableConnection, for server: ObjectIdentifier) {
        connections[server]?[ObjectIdentifier(connection)] = nil
    }

    func drain(_ server: ObjectIdentifier) async {
        for listener in listeners[server] ?? [] { await listener.close() }
        listeners[server] = nil
        for connection in (connections[server] ?? [:]).values { connection.drain() }
    }
}

/// A server connection as the registry sees it.
protocol DrainableConnection: AnyObject {
    /// Sends a go-away and closes once the calls in flight end, without waiting for either.
    func drain()
}
