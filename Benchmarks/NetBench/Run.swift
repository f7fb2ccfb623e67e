#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import NetRuntime

/// Drives a workload against `serve` and prints its RESULT line.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a workload against `serve`.")

    @Option(help: "Layer: runtime (raw sockets).") var layer: Layer = .runtime
    @Option(help: "Workload: rtt.") var workload: Workload = .rtt
    @Option(help: "Server address.") var host = "127.0.0.1"
    @Option(help: "Server port.") var port: Int
    @Option(help: "Payload bytes.") var size = 64
    @Option(help: "Warm-up round trips (rtt).") var warmup = 10_000
    @Option(help: "Timed round trips (rtt).") var count = 100_000
    @Option(name: .customLong("max-s"), help: "Cap on the timed part, seconds.") var maxSeconds = 100.0

    func run() async throws {
        guard let address = SocketAddress(host: host, port: port) else { throw ValidationError("bad --host \(host)") }
        let runtime = try Runtime(configuration: .defaults { $0.coreCount = 1 })
        defer { runtime.shutdown() }
        let (size, warmup, count, maxSeconds) = (self.size, self.warmup, self.count, self.maxSeconds)
        let samples = try await runtime.run(on: 0) { core in
            try await RuntimeRTT.measure(core: core, address: address, size: size, warmup: warmup, count: count, maxSeconds: maxSeconds)
        }
        let sorted = samples.sorted()
        let p50 = Double(percentile(sorted, 50)) / 1000
        let p99 = Double(percentile(sorted, 99)) / 1000
        result(peer: "swift-net-\(layer.rawValue)-tcp", workload: "rtt", value: p50, unit: "us_p50", p99us: p99, n: sorted.count)
        note("# rtt min \(format(Double(sorted.first ?? 0) / 1000)) us, p90 \(format(Double(percentile(sorted, 90)) / 1000)) us, p99.9 \(format(Double(percentile(sorted, 99.9)) / 1000)) us, max \(format(Double(sorted.last ?? 0) / 1000)) us")
    }
}

/// One connection, one request in flight: send `size` bytes, wait for all of them back.
enum RuntimeRTT {
    /// `@concurrent` with the core's executor preference: runs on the core, nonisolated, which
    /// costs one job per operation instead of three for actor-isolated code.
    @concurrent
    static func measure(
        core: Core, address: SocketAddress, size: Int, warmup: Int, count: Int, maxSeconds: Double
    ) async throws -> [UInt64] {
        let fd = try await core.connectTCP(to: address, timeout: .seconds(5))
        try Socket.setNoDelay(fd)
        let out = BenchBuffer(count: size)
        let reply = BenchBuffer(count: max(size, 64 * 1024))
        var samples: [UInt64] = []
        samples.reserveCapacity(count)
        let stop = Deadline.now + .milliseconds(Int64(maxSeconds * 1000))
        for i in 0..<(warmup + count) {
            let start = Deadline.now
            try await core.sendAll(fd, UnsafeRawBufferPointer(out.bytes))
            var got = 0
            while got < size {
                let n = try await core.recv(fd, into: UnsafeMutableRawBufferPointer(rebasing: reply.bytes[got...]), pollFirst: true)
                if n == 0 { throw IOError(code: ECONNRESET, operation: .recv) }
                got += n
            }
            if i >= warmup {
                let end = Deadline.now
                samples.append(end.nanoseconds - start.nanoseconds)
                if end >= stop { break }
            }
        }
        try await core.close(fd)
        return samples
    }
}
