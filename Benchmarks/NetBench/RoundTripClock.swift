import ArgumentParser
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
/// `NET_BENCH_CLOCK=monotonic` times with `clock_gettime` instead (`cycles`, the default, with
/// the counter); any other value is refused.
struct RoundTripClock {
    /// Whether ticks are cycles (else nanoseconds of the monotonic clock).
    let usesCycles: Bool
    private let startTicks: UInt64
    private let start: Deadline

    /// - Throws: `ValidationError` for a `NET_BENCH_CLOCK` other than `cycles` or `monotonic`.
    init() throws(ValidationError) {
        let choice = getenv("NET_BENCH_CLOCK").map { String(cString: $0) } ?? "cycles"
        guard choice == "cycles" || choice == "monotonic" else {
            throw ValidationError("NET_BENCH_CLOCK=\(choice): use cycles or monotonic")
        }
        usesCycles = choice == "cycles" && ccycles_read() != 0
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

/// The bookkeeping of every rtt loop: one timestamp per round trip (each ending one and starting
/// the next), samples kept after `spec.warmup`, the run bounded by `spec.maxSeconds` on the coarse
/// clock, which costs no system call anywhere. A loop calls ``lap(_:)`` after each round trip and
/// stops when it returns false (or after `spec.warmup + spec.count` round trips).
struct RoundTripTimer {
    private let clock: RoundTripClock
    private let warmup: Int
    private let stop: Deadline
    private var start: UInt64
    private var samples: [UInt64] = []

    /// - Throws: `ValidationError` for a bad `NET_BENCH_CLOCK` (``RoundTripClock``).
    init(_ spec: WorkloadSpec) throws(ValidationError) {
        clock = try RoundTripClock()
        warmup = spec.warmup
        stop = Deadline.coarseNow + .milliseconds(Int64(spec.maxSeconds * 1000))
        samples.reserveCapacity(spec.count)
        start = clock.now()
    }

    /// Ends round trip `index` (counted from 0, warm-up included) now; returns whether to go on.
    @inline(__always)
    mutating func lap(_ index: Int) -> Bool {
        let end = clock.now()
        defer { start = end }
        guard index >= warmup else { return true }
        samples.append(end &- start)
        return Deadline.coarseNow < stop
    }

    /// The timed round trips, in nanoseconds.
    func nanoseconds() -> [UInt64] { clock.nanoseconds(samples) }
}
