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
}

/// Which workload `run` drives; the definitions are those of ../shared/peers/README.md.
enum Workload: String, ExpressibleByArgument, CaseIterable {
    case rtt
}
