// net-rpc-child: RPC scenarios the tests run in a child process, because they change
// process-wide state (the swift-metrics backend, which can be bootstrapped once per process).
// Prints `key=value` lines on stdout for the parent test to check.
#if canImport(Glibc)
import Glibc
#endif
import CoreMetrics
import MetricsTestKit
import NetRPC
import NetRuntime
import NetTCP

enum Echo {
    static let echo = RPCMethod<String, String>(id: 1, name: "Echo.echo")
    static let fail = RPCMethod<String, String>(id: 2, name: "Echo.fail")
}

struct EchoService: RPCService {
    func register(into handlers: inout RPCHandlers) {
        handlers.register(Echo.echo) { text, _ in text }
        handlers.registerInline(Echo.fail) { _, _ in throw RPCError(.handlerError, "refused") }
    }
}

/// Serves `Echo` over TCP on 127.0.0.1, makes `calls` echo calls and one failing call, then
/// prints what the metrics backend recorded for each method.
func metricsScenario(calls: Int) async throws {
    let metrics = TestMetrics()
    MetricsSystem.bootstrap(metrics)
    let runtime = try Runtime(configuration: .defaults { $0.coreCount = 1 })
    defer { runtime.shutdown() }
    let server = RPCServer(services: [EchoService()])
    let group = try TCPListenerGroup.bind(SocketAddress(host: "127.0.0.1", port: 0)!, cores: 1)
    try runtime.spawn(on: 0) { core in try await server.serve(try group.listener(on: core)) }
    let client = RPCClient(dialer: TCPDialer(), cores: runtime.cores)
    var echoed = 0
    for i in 0..<calls where try await client.callFromAnywhere(Echo.echo, "\(i)", to: .socket(group.address)) == "\(i)" {
        echoed += 1
    }
    let failed = (try? await client.callFromAnywhere(Echo.fail, "x", to: .socket(group.address))) == nil
    server.beginDrain()
    await server.drained()
    print("echoed=\(echoed)")
    print("failed=\(failed)")
    for (method, name) in [("Echo.echo", "echo"), ("Echo.fail", "fail")] {  // keys: letters only
        let dimensions = [("method", method)]
        let counted = (try? metrics.expectCounter("rpc_server_calls_total", dimensions))?.totalValue ?? -1
        let errors = (try? metrics.expectCounter("rpc_server_errors_total", dimensions))?.totalValue ?? 0
        let timed = (try? metrics.expectTimer("rpc_server_latency", dimensions))?.values ?? []
        print("\(name)Calls=\(counted)")
        print("\(name)Errors=\(errors)")
        print("\(name)Timed=\(timed.count)")
        print("\(name)TimedPositive=\(timed.allSatisfy { $0 > 0 })")
    }
}

let scenario = CommandLine.arguments.dropFirst().first ?? ""
switch scenario {
case "metrics":
    try await metricsScenario(calls: 20)
default:
    print("unknown scenario \(scenario)")
    exit(2)
}
