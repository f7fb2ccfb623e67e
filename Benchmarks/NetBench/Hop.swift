import ArgumentParser
import NetRuntime

/// A job hop (suspend, enqueue, run again) on a core with the core's executor preference,
/// against the same on Swift's global executor, in one run.
struct Hop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Job hop cost: core executor vs global executor.")

    @Option(help: "Hops per measurement.") var count = 1_000_000
    @Option(help: "Measurements; the median is reported.") var repeats = 5

    func run() async throws {
        let runtime = try Runtime(configuration: .defaults { $0.coreCount = 1 })
        defer { runtime.shutdown() }
        let count = self.count
        var core: [Double] = []
        var global: [Double] = []
        for _ in 0..<repeats {
            core.append(try await runtime.run(on: 0) { _ in await Self.measure(count) })
            global.append(await Task.detached { await Self.measure(count) }.value)
        }
        let coreMedian = core.sorted()[core.count / 2]
        let globalMedian = global.sorted()[global.count / 2]
        result(peer: "swift-net-core", workload: "hop", value: coreMedian, unit: "ns_per_hop", p99us: nil, n: count * repeats)
        result(peer: "swift-global", workload: "hop", value: globalMedian, unit: "ns_per_hop", p99us: nil, n: count * repeats)
        note("# hop ns per run: core \(core.map(format)) global \(global.map(format))")
    }

    /// Yields `count` times: each yield suspends the task and enqueues it on its executor again.
    static func measure(_ count: Int) async -> Double {
        let start = Deadline.now
        for _ in 0..<count { await Task.yield() }
        return Double(Deadline.now.nanoseconds - start.nanoseconds) / Double(count)
    }
}
