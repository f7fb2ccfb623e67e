#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import NetRuntime

/// CPU used by a parked runtime (every core idle, no timer armed): it should be ~0, since a
/// parked core waits in the kernel with no timeout.
struct Idle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "CPU used by an idle runtime.")

    @Option(help: "Seconds to stay idle.") var seconds = 3.0

    func run() async throws {
        let runtime = try Runtime()
        defer { runtime.shutdown() }
        _ = try await runtime.runOnEveryCore { core in core.index }
        let before = Self.cpuSeconds()
        let start = Deadline.now
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 { request = remaining }
        let wall = Double(Deadline.now.nanoseconds - start.nanoseconds) / 1e9
        let used = Self.cpuSeconds() - before
        let parks = try await runtime.runOnEveryCore { core in core.statistics.parks }
        result(peer: "swift-net-core", workload: "idle", value: used / wall * 100, unit: "cpu_pct", p99us: nil, n: runtime.cores.count)
        note("# idle: \(runtime.cores.count) cores, \(format(used * 1000)) ms CPU over \(format(wall)) s, parks per core \(parks)")
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }
}
