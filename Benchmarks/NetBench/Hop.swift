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
        // Jobs the core runs per hop, and the cost of a no-op round trip through the ring.
        let (jobsPerHop, nopNs, jobsPerNop) = try await runtime.run(on: 0) { core in
            let before = core.statistics.jobsRun
            _ = await Self.measure(count)
            let jobsPerHop = Double(core.statistics.jobsRun - before) / Double(count)
            let mid = core.statistics.jobsRun
            let midIsolated = core.statistics.isolatedJobsRun
            let start = Deadline.now
            for _ in 0..<count { try await core.nop() }
            note("# isolated nop: \(Double(core.statistics.isolatedJobsRun - midIsolated) / Double(count)) isolated jobs per nop")
            let nopNs = Double(Deadline.now.nanoseconds - start.nanoseconds) / Double(count)
            return (jobsPerHop, nopNs, Double(core.statistics.jobsRun - mid) / Double(count))
        }
        note("# core (isolated): \(format(jobsPerHop)) jobs per hop; ring no-op round trip \(format(nopNs)) ns, \(format(jobsPerNop)) jobs per no-op")
        let core0 = runtime.cores[0]
        let (a, b, c, d) = try await withTaskExecutorPreference(core0.executor) {
            try await Self.nonisolatedProbe(core0, count)
        }
        note("# core (nonisolated, preference): hop \(format(a)) ns, \(format(b)) jobs per hop; no-op \(format(c)) ns, \(format(d)) jobs per no-op")
    }

    @concurrent
    static func nonisolatedProbe(_ core: Core, _ count: Int) async throws -> (Double, Double, Double, Double) {
        let before = await core.statistics.jobsRun
        let start = Deadline.now
        for _ in 0..<count { await Task.yield() }
        let hop = Double(Deadline.now.nanoseconds - start.nanoseconds) / Double(count)
        let mid = await core.statistics.jobsRun
        let start2 = Deadline.now
        for _ in 0..<count { try await core.nop() }
        let nop = Double(Deadline.now.nanoseconds - start2.nanoseconds) / Double(count)
        let end = await core.statistics.jobsRun
        return (hop, Double(mid - before) / Double(count), nop, Double(end - mid) / Double(count))
    }

    /// Yields `count` times: each yield suspends the task and enqueues it on its executor again.
    static func measure(_ count: Int) async -> Double {
        let start = Deadline.now
        for _ in 0..<count { await Task.yield() }
        return Double(Deadline.now.nanoseconds - start.nanoseconds) / Double(count)
    }
}
