#if canImport(Glibc)
import Glibc
#endif
import NetRPC
import NetRuntime
import NetTCP
import NetTransport
import Synchronization
import Testing

/// A runtime for one test; honours `NET_RUNTIME_BACKEND`.
func withRuntime<T>(cores: Int = 1, _ body: (Runtime) async throws -> T) async throws -> T {
    let runtime = try Runtime(configuration: .defaults { $0.coreCount = cores })
    do {
        let result = try await body(runtime)
        await runtime.stop()
        return result
    } catch {
        await runtime.stop()
        throw error
    }
}

/// The methods of the test service.
enum TestAPI {
    static let echo = RPCMethod<String, String>(id: 1, name: "Test.echo")
    static let raw = RPCMethod<Message, Message>.raw(id: 2, name: "Test.raw")
    /// Sleeps the given milliseconds (cancellably), then returns them.
    static let sleep = RPCMethod<Int, Int>(id: 3, name: "Test.sleep")
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

    struct Point: Codable, Equatable, Sendable { var x: Int; var y: Double }
}

/// What handlers saw, for tests to check (shared across threads).
final class Probe: Sendable {
    struct State {
        var started: [Int] = []
        var cancelled: [Int] = []
        var recorded: [String] = []
    }
    let state = Mutex(State())

    func started(_ ms: Int) { state.withLock { $0.started.append(ms) } }
    func cancelled(_ ms: Int) { state.withLock { $0.cancelled.append(ms) } }
    var snapshot: State { state.withLock { $0 } }

    /// Waits (polling the shared state, yielding) until `condition` holds, for at most `seconds`.
    func wait(seconds: Double = 10, until condition: (State) -> Bool) async -> Bool {
        let end = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < end {
            if condition(snapshot) { return true }
            try? await Task.sleep(for: .milliseconds(2))
        }
        return condition(snapshot)
    }
}

/// The service the tests call.
struct TestService: RPCService {
    let probe: Probe

    func register(into handlers: inout RPCHandlers) {
        let probe = self.probe
        handlers.register(TestAPI.echo) { text, _ in text }
        handlers.register(TestAPI.raw) { bytes, _ in bytes }
        handlers.register(TestAPI.sleep) { ms, context in
            probe.started(ms)
            do {
                try await context.core.sleep(for: .milliseconds(Int64(ms)))
            } catch {
                probe.cancelled(ms)
                throw error
            }
            return ms
        }
        handlers.register(TestAPI.fail) { text, _ in throw TestFailure(text: text) }
        handlers.register(TestAPI.deadline) { _, context in
            guard let deadline = context.deadline else { return -1 }
            return Int(deadline.remaining.components.seconds * 1000) + Int(deadline.remaining.components.attoseconds / 1_000_000_000_000_000)
        }
        handlers.register(TestAPI.metadata) { key, context in context.metadata[key] }
        handlers.register(TestAPI.record) { text, _ in
            probe.state.withLock { $0.recorded.append(text) }
            return true
        }
        handlers.register(TestAPI.json) { point, _ in TestAPI.Point(x: point.x * 2, y: point.y * 2) }
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

/// The error a throwing body ended with.
func caught(_ body: () async throws -> Void) async -> (any Error)? {
    do {
        try await body()
        return nil
    } catch {
        return error
    }
}

/// The RPC status of an error.
func status(_ error: (any Error)?) -> RPCError.Code? { (error as? RPCError)?.code }

/// The transports the service suite runs over: TCP everywhere; RDMA joins it where a device is
/// (the soft-RoCE guest).
enum TestTransport: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case tcp

    /// Those usable on this machine.
    static var available: [TestTransport] { [.tcp] }

    var testDescription: String { rawValue }

    /// The address servers listen on.
    var listenAddress: SocketAddress { SocketAddress(host: "127.0.0.1", port: 0)! }

    /// Serves `server` on every core of `runtime`; returns the address.
    func startServer(_ runtime: Runtime, server: RPCServer) throws -> SocketAddress {
        switch self {
        case .tcp: try NetRPCTests.startServer(runtime, server: server)
        }
    }

    /// An RPC connection to `address` from `core`.
    func connect(_ address: SocketAddress, on core: Core, configuration: RPCConfiguration = .init()) async throws -> any RPCCaller {
        switch self {
        case .tcp: try RPCConnection(try await TCPDialer().dial(address, on: core), configuration: configuration)
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
    func close() async
    var pendingCount: Int { get }
}

extension RPCCaller {
    func call<Request, Response>(_ method: RPCMethod<Request, Response>, _ request: Request) async throws(RPCError) -> Response {
        try await call(method, request, options: RPCCallOptions())
    }
    func notify<Request, Response>(_ method: RPCMethod<Request, Response>, _ request: Request) async throws(RPCError) {
        try await notify(method, request, options: RPCCallOptions())
    }
}

extension RPCConnection: RPCCaller {}
