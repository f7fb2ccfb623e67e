#if canImport(Glibc)
import Glibc
#endif
import NetRDMA
import NetRPC
import NetRuntime
import NetTCP
import NetTransport
import Synchronization
import Testing
import NetTestSupport


/// The methods of the test service.
enum TestAPI {
    static let echo = RPCMethod<String, String>(id: 1, name: "Test.echo")
    static let raw = RPCMethod<Message, Message>.raw(id: 2, name: "Test.raw")
    /// Waits until the test opens the given key (`Probe.open`), or is cancelled; returns the key.
    static let hold = RPCMethod<Int, Int>(id: 3, name: "Test.hold")
    /// Throws an error with the given text.
    static let fail = RPCMethod<String, String>(id: 4, name: "Test.fail")
    /// Returns the milliseconds to the deadline the handler sees (-1 for none).
    static let deadline = RPCMethod<Int, Int>(id: 5, name: "Test.deadline")
    /// Returns the value of a metadata key.
    static let metadata = RPCMethod<String, String?>(id: 6, name: "Test.metadata")
    /// One-way: records the text.
    static let record = RPCMethod<String, Bool>(id: 7, name: "Test.record")
    /// A method the server does not register.
    static let missing = RPCMethod<String, String>(id: 99, name: "Test.missing")
    /// JSON-coded.
    static let json = RPCMethod<Point, Point>.json(id: 8, name: "Test.json")
    /// Inline (``RPCHandlers/registerInline(_:_:)``): returns the text reversed, or throws for "fail"
    /// (a plain error) and "status" (an ``RPCError`` passed through as it is); records the text when it runs.
    static let inline = RPCMethod<String, String>(id: 9, name: "Test.inline")
    /// Inline: returns a string of the given number of bytes (a small request, a large answer).
    static let fill = RPCMethod<Int, String>(id: 10, name: "Test.fill")
    /// Not inline (a task per call): records "fill", then returns a string of the given number
    /// of bytes.
    static let fillLater = RPCMethod<Int, String>(id: 11, name: "Test.fillLater")

    struct Point: Codable, Equatable, Sendable { var x: Int; var y: Double }
}

/// What handlers saw, for tests to check, and the gates `hold` calls wait at (shared across
/// threads). Tests wait on its events, never on time.
final class Probe: Sendable {
    struct State {
        var started: [Int] = []
        var cancelled: [Int] = []
        var recorded: [String] = []
    }
    private struct Inner {
        var state = State()
        var opened = Set<Int>()
        var held: [Int: (key: Int, continuation: CheckedContinuation<Void, Never>)] = [:]   // by hold ticket
        var cancelledEarly = Set<Int>()
        var nextTicket = 0
        var watchers: [(condition: @Sendable (State) -> Bool, continuation: CheckedContinuation<Void, Never>)] = []
    }
    private let inner = Mutex(Inner())

    var snapshot: State { inner.withLock { $0.state } }

    /// Records a one-way message.
    func record(_ text: String) { change { $0.recorded.append(text) } }

    /// Waits until `condition` holds (at once if it does); the suite's time limit bounds it.
    func until(_ condition: @escaping @Sendable (State) -> Bool) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = inner.withLock { inner -> Bool in
                if condition(inner.state) { return true }
                inner.watchers.append((condition, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// The handler of `hold`: records `key` as started, waits until the test opens `key`, or the
    /// call is cancelled (then records it as cancelled and throws `CancellationError`).
    func hold(_ key: Int) async throws {
        change { $0.started.append(key) }
        let ticket = inner.withLock { inner -> Int in
            inner.nextTicket += 1
            return inner.nextTicket
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let go = inner.withLock { inner -> Bool in
                    if inner.opened.contains(key) || inner.cancelledEarly.remove(ticket) != nil { return true }
                    inner.held[ticket] = (key, continuation)
                    return false
                }
                if go { continuation.resume() }
            }
        } onCancel: {
            let waiting = inner.withLock { inner -> CheckedContinuation<Void, Never>? in
                if let held = inner.held.removeValue(forKey: ticket) { return held.continuation }
                inner.cancelledEarly.insert(ticket)
                return nil
            }
            waiting?.resume()
        }
        if Task.isCancelled && !inner.withLock({ $0.opened.contains(key) }) {
            change { $0.cancelled.append(key) }
            throw CancellationError()
        }
    }

    /// Lets every `hold(key)` call, now and later, return.
    func open(_ key: Int) {
        let released = inner.withLock { inner -> [CheckedContinuation<Void, Never>] in
            inner.opened.insert(key)
            let tickets = inner.held.filter { $0.value.key == key }.map(\.key)
            return tickets.compactMap { inner.held.removeValue(forKey: $0)?.continuation }
        }
        for continuation in released { continuation.resume() }
    }

    private func change(_ body: (inout State) -> Void) {
        let ready = inner.withLock { inner -> [CheckedContinuation<Void, Never>] in
            body(&inner.state)
            var ready: [CheckedContinuation<Void, Never>] = []
            inner.watchers.removeAll { watcher in
                guard watcher.condition(inner.state) else { return false }
                ready.append(watcher.continuation)
                return true
            }
            return ready
        }
        for continuation in ready { continuation.resume() }
    }
}

/// The service the tests call.
struct TestService: RPCService {
    let probe: Probe

    func register(into handlers: inout RPCHandlers) {
        let probe = self.probe
        handlers.register(TestAPI.echo) { text, _ in text }
        handlers.register(TestAPI.raw) { bytes, _ in bytes }
        handlers.register(TestAPI.hold) { key, _ in
            try await probe.hold(key)
            return key
        }
        handlers.register(TestAPI.fail) { text, _ in throw TestFailure(text: text) }
        handlers.register(TestAPI.deadline) { _, context in
            guard let deadline = context.deadline else { return -1 }
            return Int(deadline.remaining.components.seconds * 1000) + Int(deadline.remaining.components.attoseconds / 1_000_000_000_000_000)
        }
        handlers.register(TestAPI.metadata) { key, context in context.metadata[key] }
        handlers.register(TestAPI.record) { text, _ in
            probe.record(text)
            return true
        }
        handlers.register(TestAPI.json) { point, _ in TestAPI.Point(x: point.x * 2, y: point.y * 2) }
        handlers.registerInline(TestAPI.fill) { count, _ in String(repeating: "x", count: max(count, 0)) }
        handlers.register(TestAPI.fillLater) { count, _ in
            probe.record("fill")
            return String(repeating: "x", count: max(count, 0))
        }
        handlers.registerInline(TestAPI.inline) { text, context in
            probe.record(text)
            switch text {
            case "fail": throw TestFailure(text: text)
            case "status": throw RPCError(.resourceExhausted, "no room")
            default: return String(text.reversed()) + (context.core.isCurrent ? "" : " (off its core)")
            }
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var text: String
    var description: String { "TestFailure: \(text)" }
}

/// A server on 127.0.0.1 serving `TestService` on core 0 of `runtime`; returns its address.
func startServer(
    _ runtime: Runtime, server: RPCServer, tcp: TCPConfiguration = .init()
) throws -> SocketAddress {
    let group = try TCPListenerGroup.bind(SocketAddress(host: "127.0.0.1", port: 0)!, cores: runtime.cores.count, configuration: tcp)
    for core in runtime.cores {
        _ = try runtime.spawn(on: core.index) { core in
            let listener = try group.listener(on: core)
            try await server.serve(listener)
        }
    }
    return group.address
}


/// The RPC status of an error.
func status(_ error: (any Error)?) -> RPCError.Code? { (error as? RPCError)?.code }

/// The transports the service suite runs over. ``RPCCallTests`` runs each test over TCP, here and
/// everywhere; ``RPCCallRDMATests`` runs the same test functions over RDMA, on rxe0 in the
/// soft-RoCE guest only (scripts/rdma-tests selects that suite by its name).
enum TestTransport: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case tcp
    /// RDMA on rxe0's address: only where there is a device (the guest of scripts/rdma-vm).
    case rdma

    /// Whether this machine can carry it.
    var isAvailable: Bool {
        switch self {
        case .tcp: true
        case .rdma: RDMATestEnvironment.inGuest && RDMATestEnvironment.hasDevice
        }
    }

    var testDescription: String { rawValue }

    /// The address servers listen on: loopback, or rxe0's own (rdma_cm cannot route 127.0.0.1).
    var listenAddress: SocketAddress {
        switch self {
        case .tcp: SocketAddress(host: "127.0.0.1", port: 0)!
        case .rdma: SocketAddress(host: RDMATestEnvironment.address, port: 0)!
        }
    }

    /// RDMA connections with the guest's slower clock.
    static var rdmaConfiguration: RDMATransport.Configuration {
        .defaults {
            $0.connectTimeout = RDMATestEnvironment.scaled(.seconds(3))
            $0.closeTimeout = RDMATestEnvironment.scaled(.seconds(1))
        }
    }

    /// Serves `server` and returns the address: over TCP on every core of `runtime`; over RDMA on
    /// core 0 (rdma_cm has no `SO_REUSEPORT`: one listener per port).
    func startServer(_ runtime: Runtime, server: RPCServer) async throws -> SocketAddress {
        switch self {
        case .tcp:
            return try NetRPCTests.startServer(runtime, server: server)
        case .rdma:
            let address = listenAddress
            return try await runtime.run(on: 0) { core in
                let listener = try RDMAListener.bind(address, on: core, configuration: Self.rdmaConfiguration)
                Task {
                    _ = core
                    try await server.serve(listener)
                }
                return listener.localAddress
            }
        }
    }

    /// Serves `TestService` (reporting to `probe`) on a one-core runtime and runs `body` on that
    /// core with a connection to it, closed afterwards.
    func withConnection<T: Sendable>(
        probe: Probe = Probe(), _ body: @escaping @Sendable (isolated Core, any RPCCaller) async throws -> T
    ) async throws -> T {
        try await withServer(probe: probe) { runtime, address in
            try await runtime.run(on: 0) { core in
                let rpc = try await connect(address, on: core)
                do {
                    let result = try await body(core, rpc)
                    await rpc.close()
                    return result
                } catch {
                    await rpc.close()
                    throw error
                }
            }
        }
    }

    /// Runs `body` with a runtime whose cores serve ``TestService`` (recording into `probe`) over
    /// this transport at the address given.
    func withServer<T>(probe: Probe = Probe(), _ body: (Runtime, SocketAddress) async throws -> T) async throws -> T {
        try await withRuntime { runtime in
            let server = RPCServer(services: [TestService(probe: probe)])
            return try await body(runtime, try await startServer(runtime, server: server))
        }
    }

    /// An RPC connection to `address` from `core`.
    func connect(_ address: SocketAddress, on core: Core, configuration: RPCConfiguration = .init()) async throws -> any RPCCaller {
        switch self {
        case .tcp: try RPCConnection(try await TCPDialer().dial(address, on: core), configuration: configuration)
        case .rdma:
            try RPCConnection(try await RDMADialer(configuration: Self.rdmaConfiguration).dial(address, on: core), configuration: configuration)
        }
    }
}

/// An RPC connection over any transport, as the service suite uses it.
protocol RPCCaller: AnyObject {
    func call<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, options: RPCCallOptions
    ) async throws(RPCError) -> Response
    func notify<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, options: RPCCallOptions
    ) async throws(RPCError)
    func callAll<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ requests: some Sequence<Request>, options: RPCCallOptions
    ) async -> [Result<Response, RPCError>]
    func close() async
    var pendingCount: Int { get }
    /// Closes the transport under the connection, as if the network dropped it.
    func dropTransport() async
}

extension RPCCaller {
    func call<Request, Response>(_ method: RPCMethod<Request, Response>, _ request: Request) async throws(RPCError) -> Response {
        try await call(method, request, options: RPCCallOptions())
    }
    func notify<Request, Response>(_ method: RPCMethod<Request, Response>, _ request: Request) async throws(RPCError) {
        try await notify(method, request, options: RPCCallOptions())
    }
}

extension RPCConnection: RPCCaller {
    func dropTransport() async { await transport.close() }
}
