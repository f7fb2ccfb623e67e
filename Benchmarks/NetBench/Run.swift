#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import NetRDMA
import NetRuntime
import NetTCP

/// Drives workloads against `serve`, prints a RESULT line for each and then a table of them all.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run workloads against `serve`.")

    @Option(help: "Layer: runtime (raw sockets), transport (framed messages) or rpc (unary echo calls).") var layer: Layer = .runtime
    @Option(help: "Transport under the transport and rpc layers: tcp or rdma.") var transport: TransportKind = .tcp
    @Option(help: "Workload: rtt, rate or bulk; repeat the option to run several in turn.") var workload: [Workload] = [.rtt]
    @Option(help: "Server address (default 127.0.0.1; for rdma the server's RDMA address, default $RDMA_ADDR).") var host: String?
    @Option(help: "Server port.") var port: Int
    @Option(help: "Payload bytes (default: 64, bulk 1 MiB).") var size: Int?
    @Option(help: "Connections (rate 4, else 1).") var connections: Int?
    @Option(help: "Requests in flight per connection (rate 32, bulk 4, rtt 1).") var depth: Int?
    @Option(help: "Warm-up round trips (rtt).") var warmup = 10_000
    @Option(help: "Timed round trips (rtt).") var count = 100_000
    @Option(name: .customLong("warmup-s"), help: "Warm-up seconds (rate, bulk).") var warmupSeconds = 1.0
    @Option(name: .customLong("duration-s"), help: "Timed seconds (rate, bulk).") var durationSeconds = 5.0
    @Option(name: .customLong("max-s"), help: "Cap on the timed part of rtt, seconds.") var maxSeconds = 100.0
    @Flag(help: "rpc layer: calls with RPCCallOptions(cancellable: false), whose waits cost no cancellation handler (reported as a peer of its own).") var uncancellable = false
    @Option(help: "transport layer, rtt: how the client takes its replies: loop (a task awaits recv) or handler (startReceiving: each reply's handler sends the next request, as perftest's client loop does; reported as a peer of its own: -handlerclient).") var receive: ReceiveKind = .loop
    @Flag(help: "rpc layer, rate and bulk: one task per connection makes its calls through RPCConnection.callAll, --depth at a time, instead of a task per call in flight (reported as a peer of its own: -batched).") var batched = false
    @OptionGroup var rdma: RDMAOptions
    @OptionGroup var runtimeOptions: RuntimeOptions

    /// Bytes an RPC request adds to its payload, at most, without metadata (docs/PROTOCOL.md:
    /// the 12-byte header, the method ID and the timeout).
    static let rpcHeadroom = 64

    func run() async throws {
        let host = transport == .rdma ? try RDMAOptions.host(self.host) : self.host ?? "127.0.0.1"
        guard let address = SocketAddress(host: host, port: port) else { throw ValidationError("bad --host \(host)") }
        if layer == .runtime && workload.contains(where: { $0 != .rtt }) { throw ValidationError("--layer runtime runs rtt only") }
        if layer == .runtime && transport == .rdma { throw ValidationError("--layer runtime is raw TCP sockets: use --transport tcp") }
        let specs = workload.map { workload in
            WorkloadSpec(
                workload: workload,
                address: address,
                size: size ?? (workload == .bulk ? 1 << 20 : 64),
                connections: connections ?? (workload == .rate ? 4 : 1),
                depth: depth ?? (workload == .rate ? 32 : workload == .bulk ? 4 : 1),
                warmup: warmup, count: count,
                warmupSeconds: warmupSeconds, durationSeconds: durationSeconds, maxSeconds: maxSeconds,
                uncancellable: uncancellable, batched: batched
            )
        }
        let rdma = self.rdma.configuration
        if transport == .rdma, let largest = specs.map(\.size).max() {
            let needed = largest + (layer == .rpc ? Self.rpcHeadroom : 0)
            if needed > rdma.maximumMessageSize {
                throw ValidationError("messages of \(needed) bytes are above the RDMA maximum of \(rdma.maximumMessageSize): pass --rdma-max-message \(needed) or more to serve and run")
            }
        }
        // One core: `taskset -c 1` gives the client one CPU.
        let runtime = try Runtime(configuration: runtimeOptions.configuration(coreCount: 1))
        defer { runtime.shutdown() }
        let (layer, transport) = (self.layer, self.transport)
        // Busy-polled RDMA is a peer of its own: its figures are not comparable with the others.
        let carrier = transport.rawValue + (transport == .rdma && self.rdma.rdmaBusyPollUs != nil ? "-poll" : "")
        let peer = "swift-net-\(layer.rawValue)-\(carrier)" + (layer == .rpc && uncancellable ? "-uncancellable" : "")
            + (layer == .rpc && batched ? "-batched" : "")
            + (layer == .transport && receive == .handler ? "-handlerclient" : "")
            + runtimeOptions.peerSuffix
        let receive = self.receive
        var rows: [ResultRow] = []
        for spec in specs {
            let measurement = try await runtime.run(on: 0) { core in
                switch (layer, transport) {
                case (.runtime, _): Measurement(samples: try await RuntimeRTT.measure(core: core, spec: spec))
                case (.transport, .tcp) where receive == .handler:
                    try await TransportClient.measure(spec, dialer: TCPDialer(), on: core, roundTrips: DirectLoops.timeRoundTripsFromHandler)
                case (.transport, .rdma) where receive == .handler:
                    try await TransportClient.measure(spec, dialer: RDMADialer(configuration: rdma), on: core, roundTrips: DirectLoops.timeRoundTripsFromHandler)
                case (.transport, .tcp): try await TransportClient.measure(spec, dialer: TCPDialer(), on: core, roundTrips: DirectLoops.timeRoundTrips)
                case (.transport, .rdma): try await TransportClient.measure(spec, dialer: RDMADialer(configuration: rdma), on: core, roundTrips: DirectLoops.timeRoundTrips)
                case (.rpc, .tcp): try await RPCClientBench.measure(spec, dialer: TCPDialer(), on: core)
                case (.rpc, .rdma): try await RPCClientBench.measure(spec, dialer: RDMADialer(configuration: rdma), on: core)
                }
            }
            rows.append(report(measurement, peer: peer, spec: spec))
        }
        printTable(rows, layer: layer.rawValue, transport: carrier)
    }
}

/// The parameters of one workload run.
struct WorkloadSpec: Sendable {
    var workload: Workload
    var address: SocketAddress
    var size: Int
    var connections: Int
    var depth: Int
    var warmup: Int
    var count: Int
    var warmupSeconds: Double
    var durationSeconds: Double
    var maxSeconds: Double
    /// rpc: calls that task cancellation does not end (`RPCCallOptions.cancellable` false).
    var uncancellable = false
    /// rpc rate and bulk: one task per connection keeps `depth` calls in flight through
    /// `RPCConnection.callAll`, rather than a task per call in flight.
    var batched = false
}

/// Prints the RESULT line (and context on stderr) for a measurement; returns it for the table.
func report(_ m: Measurement, peer: String, spec: WorkloadSpec) -> ResultRow {
    switch spec.workload {
    case .rtt:
        let sorted = m.samples.sorted()
        let us = { (p: Double) in Double(percentile(sorted, p)) / 1000 }
        let row = result(peer: peer, workload: "rtt", value: us(50), unit: "us_p50", p99us: us(99), n: sorted.count)
        note("# rtt min \(format(Double(sorted.first ?? 0) / 1000)) us, p90 \(format(us(90))) us, p99.9 \(format(us(99.9))) us, max \(format(Double(sorted.last ?? 0) / 1000)) us")
        return row
    case .rate:
        return result(peer: peer, workload: "rate", value: (Double(m.completions) / m.seconds).rounded(), unit: "rpc_per_s", p99us: nil, n: m.completions)
    case .bulk:
        return result(peer: peer, workload: "bulk", value: Double(m.bytes) / m.seconds / 1e6, unit: "MB_per_s", p99us: nil, n: m.completions)
    }
}

/// One connection, one request in flight: send `size` bytes, wait for all of them back.
enum RuntimeRTT {
    /// `@concurrent` with the core's executor preference: runs on the core, nonisolated, which
    /// costs one job per operation instead of three for actor-isolated code.
    @concurrent
    static func measure(core: Core, spec: WorkloadSpec) async throws -> [UInt64] {
        let size = spec.size
        let fd = try await core.connectTCP(to: spec.address, timeout: .seconds(5))
        try Socket.setNoDelay(fd)
        let out = BenchBuffer(count: size)
        let reply = BenchBuffer(count: max(size, 64 * 1024))
        var timer = try RoundTripTimer(spec)
        for i in 0..<(spec.warmup + spec.count) {
            // Written at once when the socket has room, as TCPTransport does; the ring takes any rest.
            let now = try core.sendNow(fd, UnsafeRawBufferPointer(out.bytes))
            if now < size { try await core.sendAll(fd, UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(out.bytes)[now...])) }
            var got = 0
            while got < size {
                let n = try await core.recv(
                    fd, into: UnsafeMutableRawBufferPointer(rebasing: reply.bytes[got...]), pollFirst: true, cancellable: false)
                if n == 0 { throw IOError(code: ECONNRESET, operation: .recv) }
                got += n
            }
            if !timer.lap(i) { break }
        }
        try await core.close(fd)
        return timer.nanoseconds()
    }
}
