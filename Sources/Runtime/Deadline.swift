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
    public static var now: Deadline {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Deadline(nanoseconds: UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec))
    }

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

extension Duration {
    /// The duration in whole nanoseconds, clamped to `Int64`.
    var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = ns.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? .min : .max }
        return sum
    }
}
