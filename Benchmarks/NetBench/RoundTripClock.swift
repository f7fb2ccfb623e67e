import CCycleCounter
import Glibc
import NetRuntime

/// Times round trips with the CPU's cycle counter, as perftest does, calibrated against the
/// monotonic clock over the whole run.
///
/// Where the kernel's clock source cannot be read from user space (the soft-RoCE guest's HPET),
/// every `clock_gettime` is a system call on the client's path: 1-3 µs of a busy-polled round
/// trip there in A/Bs (docs/BENCHMARKS.md, "eleventh stop"), which perftest's figures do not pay.
/// On this host the vDSO reads the TSC anyway, so nothing changes here.
/// `NET_BENCH_CLOCK=monotonic` times with `clock_gettime` instead.
struct RoundTripClock {
    /// Whether ticks are cycles (else nanoseconds of the monotonic clock).
    let usesCycles: Bool
    private let startTicks: UInt64
    private let start: Deadline

    init() {
        let forced = getenv("NET_BENCH_CLOCK").map { String(cString: $0) } == "monotonic"
        usesCycles = !forced && ccycles_read() != 0
        start = .now
        startTicks = usesCycles ? ccycles_read() : start.nanoseconds
    }

    /// A timestamp, in ticks.
    @inline(__always)
    func now() -> UInt64 { usesCycles ? ccycles_read() : Deadline.now.nanoseconds }

    /// Converts tick intervals measured since `init` to nanoseconds: the ticks per nanosecond
    /// are those of the whole run (both ends read now), so a run of a second or more calibrates
    /// to well under 0.1 %.
    func nanoseconds(_ intervals: [UInt64]) -> [UInt64] {
        guard usesCycles else { return intervals }
        let ticks = ccycles_read() &- startTicks
        let elapsed = Deadline.now.nanoseconds &- start.nanoseconds
        guard ticks > 0 else { return intervals }
        let scale = Double(elapsed) / Double(ticks)
        return intervals.map { UInt64((Double($0) * scale).rounded()) }
    }
}
