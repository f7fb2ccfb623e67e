import ArgumentParser

/// `net-bench`: swift-net's benchmarks. Every measurement prints one `RESULT` line in the format
/// of the peer kit (`peer=... workload=... value=... unit=... p99_us=... n=...`), so our figures
/// sit beside SwiftNIO, grpc-swift, sockperf and iperf3 measured in the same run.
@main
struct NetBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net-bench",
        abstract: "swift-net benchmarks; each prints RESULT lines.",
        subcommands: [Serve.self, Run.self, Hop.self, Idle.self, Demo.self]
    )
}

/// Which layer a serve/run pair exercises.
enum Layer: String, ExpressibleByArgument, CaseIterable {
    /// Raw runtime sockets: bytes echoed as they come, no framing.
    case runtime
    /// Whole framed messages through a `Transport` (the peers' length-prefixed echo).
    case transport
    /// Unary raw-bytes echo calls through NetRPC.
    case rpc
}

/// Which driver carries the `transport` and `rpc` layers.
enum TransportKind: String, ExpressibleByArgument, CaseIterable {
    /// TCP (`NetTCP`), over loopback by default.
    case tcp
    /// RDMA verbs (`NetRDMA`), on an RDMA device's address (rxe0 in the guest of scripts/rdma-vm).
    case rdma
}

/// Which workload `run` drives; the definitions are those of ../shared/peers/README.md.
enum Workload: String, ExpressibleByArgument, CaseIterable {
    /// 1 connection, 1 request in flight; p50 round trip in µs.
    case rtt
    /// `connections` × `depth` requests in flight; completed requests per second.
    case rate
    /// 1 connection, 1 MiB payloads, 4 in flight; MB/s echoed back.
    case bulk
}

/// What one workload run measured.
struct Measurement: Sendable {
    /// Round-trip samples in ns (rtt).
    var samples: [UInt64] = []
    /// Completions in the timed window (rate, bulk).
    var completions = 0
    /// Payload bytes received back in the timed window (bulk).
    var bytes = 0
    /// Length of the timed window in seconds.
    var seconds = 0.0
}
