#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import NetPool
import NetRDMA
import NetRPC
import NetRuntime
import NetTCP
import NetTransport
import ServiceLifecycle

/// One node: serves Echo on `--listen` and calls every `--peers` address through the
/// connection manager, printing a STATS line per peer every second. Shuts down gracefully
/// (go-away, calls in flight finish) on SIGINT or SIGTERM.
struct Node: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run one node (for real multi-host use, or as launched by `run`).")

    @Option(help: "Address to serve on, host:port.") var listen: String
    @Option(help: "Peers to call, comma-separated host:port.") var peers: String = ""
    @Option(help: "Payload bytes per call.") var payload = 64
    @Option(help: "This node's name in STATS lines.") var name = "node"
    @Option(help: "Per-call deadline, milliseconds.") var deadlineMs = 1000
    @Option(help: "Transport: tcp or rdma (then --listen and --peers are RDMA devices' addresses).") var transport: ClusterTransport = .tcp

    func run() async throws {
        var logger = Logger(label: "echo-cluster.\(name)")
        logger.logLevel = .warning
        guard let address = parseAddress(listen) else { throw ValidationError("bad --listen \(listen)") }
        let peerAddresses = try peers.split(separator: ",").map { text -> PeerAddress in
            guard let peer = parseAddress(String(text)) else { throw ValidationError("bad peer \(text)") }
            return .socket(peer)
        }
        let runtime = try Runtime(configuration: .defaults { $0.logger = logger })
        let node = NodeService(
            runtime: runtime, transport: transport, address: address, peers: peerAddresses, payload: payload, name: name,
            deadline: .milliseconds(Int64(deadlineMs)), logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: node)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        await runtime.stop()
    }
}

/// Which transport the nodes serve and call over.
enum ClusterTransport: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// TCP: one listener per core on one port.
    case tcp
    /// RDMA verbs: one listener, on core 0 (rdma_cm has no `SO_REUSEPORT`), on an RDMA device's
    /// address (rdma_cm cannot route loopback).
    case rdma
}

/// The node as a swift-service-lifecycle service.
struct NodeService: Service {
    let runtime: Runtime
    let transport: ClusterTransport
    let address: SocketAddress
    let peers: [PeerAddress]
    let payload: Int
    let name: String
    let deadline: Duration
    let logger: Logger

    func run() async throws {
        let server = RPCServer(services: [EchoService()], configuration: .defaults {
            $0.keepaliveInterval = .seconds(1)
            $0.logger = logger
        })
        switch transport {
        case .tcp:
            let group = try TCPListenerGroup.bind(address, cores: runtime.cores.count)
            for core in runtime.cores {
                _ = try runtime.spawn(on: core.index) { core in try await server.serve(try group.listener(on: core)) }
            }
            try await run(server, listeningOn: group.address, dialer: TCPDialer(configuration: .defaults { $0.connectTimeout = .seconds(1) }))
        case .rdma:
            let address = self.address
            let listening = try await runtime.run(on: 0) { core in
                let listener = try RDMAListener.bind(address, on: core)
                try core.spawn { try? await server.serve(listener) }
                return listener.localAddress
            }
            try await run(server, listeningOn: listening, dialer: RDMADialer())
        }
    }

    /// Calls every peer through a client that dials with `dialer`, reporting every second, while
    /// `server` serves on `address`; drains the server on a graceful shutdown.
    private func run<Dialer: TransportDialer>(_ server: RPCServer, listeningOn address: SocketAddress, dialer: Dialer) async throws {
        print("LISTENING \(name) \(address)")
        fflush(nil)
        var backoff = Backoff()
        backoff.base = .milliseconds(20)
        backoff.maximum = .seconds(1)
        backoff.maximumAttempts = 2
        backoff.failFastPeriod = .milliseconds(200)
        let client = RPCClient(
            dialer: dialer, cores: runtime.cores,
            configuration: .defaults {
                $0.keepaliveInterval = .milliseconds(500)
                $0.keepaliveAllowedMisses = 2
                $0.logger = logger
            },
            backoff: backoff)
        var stats: [(PeerAddress, PeerStats)] = []
        var callers: [Task<Void, any Error>] = []
        for (i, peer) in peers.enumerated() {
            let peerStats = PeerStats()
            stats.append((peer, peerStats))
            let (size, deadline) = (payload, deadline)
            callers.append(try runtime.spawn(on: i % runtime.cores.count) { core in
                try await callLoop(client: client, peer: peer, stats: peerStats, size: size, deadline: deadline, core: core)
            })
        }
        // Report every second until a graceful shutdown is requested.
        let reporter = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(1))
                for (peer, s) in stats {
                    let t = s.take()
                    print("STATS node=\(name) peer=\(peer) calls=\(t.totalCalls) errors=\(t.totalErrors) rate=\(t.calls) p50_us=\(Int(t.p50)) p99_us=\(Int(t.p99)) reconnects=\(t.reconnects) last_error=\(t.lastError.replacingOccurrences(of: " ", with: "_").prefix(60))")
                }
                fflush(nil)
            }
        }
        await withGracefulShutdownHandler {
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(50))
            }
        } onGracefulShutdown: {
            server.beginDrain()
        }
        for caller in callers { caller.cancel() }
        server.beginDrain()
        await server.drained()
        reporter.cancel()
        for (peer, s) in stats {
            let t = s.take()
            print("FINAL node=\(name) peer=\(peer) calls=\(t.totalCalls) errors=\(t.totalErrors) reconnects=\(t.reconnects)")
        }
        fflush(nil)
    }
}

/// Calls `peer` one call at a time until cancelled, flushing its figures to `stats` every ~100 ms.
func callLoop<Dialer: TransportDialer>(
    client: RPCClient<Dialer>, peer: PeerAddress, stats: PeerStats, size: Int, deadline: Duration, core: isolated Core
) async throws {
    let payload = Message([UInt8](repeating: 0x2a, count: size))
    var calls = 0, errors = 0
    var latencies: [UInt64] = []
    var lastError: String?
    var lastFlush = Deadline.now
    while !Task.isCancelled {
        let start = Deadline.now
        do {
            let reply = try await client.call(EchoAPI.echo, payload, to: peer, options: RPCCallOptions(deadline: start + deadline))
            if reply.count == size { calls += 1 } else { errors += 1 }
            latencies.append(Deadline.now.nanoseconds - start.nanoseconds)
        } catch {
            errors += 1
            lastError = "\(error.code)"
            if error.code == .cancelled { break }
            try? await core.sleep(for: .milliseconds(50))  // an unavailable peer: do not spin
        }
        if (lastFlush + .milliseconds(100)).hasPassed {
            let reconnects = max(((try? client.manager(on: core))?.dialCounts[peer] ?? 1) - 1, 0)
            stats.add(calls: calls, errors: errors, latencies: latencies, reconnects: reconnects, lastError: lastError)
            calls = 0
            errors = 0
            latencies.removeAll(keepingCapacity: true)
            lastError = nil
            lastFlush = .now
        }
    }
    let reconnects = max(((try? client.manager(on: core))?.dialCounts[peer] ?? 1) - 1, 0)
    stats.add(calls: calls, errors: errors, latencies: latencies, reconnects: reconnects, lastError: lastError)
}

/// "host:port" or "[v6]:port".
func parseAddress(_ text: String) -> SocketAddress? {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { return nil }
    var host = String(text[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return SocketAddress(host: host, port: port)
}
