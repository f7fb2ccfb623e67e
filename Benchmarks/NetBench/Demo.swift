import ArgumentParser
import NetRuntime

/// A one-process demo: an echo server on core 0 and a client on the last core, over loopback.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Echo round trips between two cores of one process.")

    @Option(help: "Round trips.") var count = 20_000

    func run() async throws {
        let runtime = try Runtime()
        defer { runtime.shutdown() }
        let (listener, address) = try Socket.listenTCP(on: SocketAddress(host: "127.0.0.1", port: 0)!)
        print("runtime: \(runtime.cores.count) core(s) on \(runtime.backendName); echo server on core 0 at \(address)")
        try runtime.spawn(on: 0) { core in try await RuntimeEcho.serve(listener: listener, on: core) }
        let count = self.count
        let samples = try await runtime.run(on: runtime.cores.count - 1) { core in
            try await RuntimeRTT.measure(core: core, spec: WorkloadSpec(
                workload: .rtt, address: address, size: 64, connections: 1, depth: 1, warmup: 1_000, count: count,
                warmupSeconds: 0, durationSeconds: 0, maxSeconds: 30))
        }.sorted()
        print("\(samples.count) round trips of 64 B: p50 \(format(Double(percentile(samples, 50)) / 1000)) us, p99 \(format(Double(percentile(samples, 99)) / 1000)) us")
    }
}
