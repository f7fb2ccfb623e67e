#if canImport(Glibc)
import Glibc
#endif

/// A point in time on the monotonic clock (`CLOCK_MONOTONIC`), in nanoseconds.
///
/// Core timers, operation deadlines and, later, RPC deadlines use it. It does not go through
/// Dispatch or the Swift clocks: a core's timers are kept by the core itself.
public struct Deadline: Comparable, Hashable, Sendable, CustomStringConvertible {
    /// Nanoseconds since an arbitrary, fixed point (boot).
    public var nanoseconds: UInt64

    /// Creates a deadline at a raw monotonic time.
    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    /// The current monotonic time.
    public static var now: Deadline { reading(CLOCK_MONOTONIC) }

    /// The monotonic time at the kernel's last clock tick: at most ``coarseLag`` behind ``now``,
    /// never ahead of it.
    ///
    /// Read from the vDSO's data page whatever the clock source, so it never costs a system call;
    /// ``now`` costs one where the clock source cannot be read from user space (an HPET or ACPI
    /// PM timer, as in many virtual machines), and there each read is a microsecond or more. Use
    /// it for deadlines whose precision need not beat a few milliseconds (idle timeouts,
    /// keepalives): `Deadline.coarseNow + .seconds(300)`.
    public static var coarseNow: Deadline { reading(CLOCK_MONOTONIC_COARSE) }

    @inline(__always)
    private static func reading(_ clock: clockid_t) -> Deadline {
        var ts = timespec()
        clock_gettime(clock, &ts)
        return Deadline(nanoseconds: UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec))
    }

    /// How far ``coarseNow`` may lag behind ``now``: two clock ticks (the coarse clock's
    /// resolution), or `nil` where the resolution is unknown or above 50 ms, and the coarse clock
    /// should not stand in for the precise one.
    public static let coarseLag: Duration? = {
        var resolution = timespec()
        guard clock_getres(CLOCK_MONOTONIC_COARSE, &resolution) == 0 else { return nil }
        let nanoseconds = Int64(resolution.tv_sec) * 1_000_000_000 + Int64(resolution.tv_nsec)
        guard nanoseconds > 0, nanoseconds <= 50_000_000 else { return nil }
        return .nanoseconds(2 * nanoseconds)
    }()

    /// A deadline that never comes.
    public static let distantFuture = Deadline(nanoseconds: .max)

    /// The deadline `duration` from now.
    public static func after(_ duration: Duration) -> Deadline { .now + duration }

    /// Time left until the deadline, zero when it has passed.
    public var remaining: Duration {
        let now = Deadline.now.nanoseconds
        return nanoseconds > now ? .nanoseconds(Int64(clamping: nanoseconds - now)) : .zero
    }

    /// Whether the deadline has passed.
    public var hasPassed: Bool { Deadline.now >= self }

    public static func < (lhs: Deadline, rhs: Deadline) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// A deadline moved by a duration; saturates instead of overflowing.
    public static func + (lhs: Deadline, rhs: Duration) -> Deadline {
        let delta = rhs.nanosecondsClamped
        if delta >= 0 {
            let (sum, overflow) = lhs.nanoseconds.addingReportingOverflow(UInt64(delta))
            return Deadline(nanoseconds: overflow ? .max : sum)
        }
        let magnitude = UInt64(delta.magnitude)
        return Deadline(nanoseconds: lhs.nanoseconds > magnitude ? lhs.nanoseconds - magnitude : 0)
    }

    public var description: String {
        self == .distantFuture ? "never" : "monotonic+\(nanoseconds)ns"
    }
}
