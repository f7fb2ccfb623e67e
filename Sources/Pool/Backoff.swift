import NetRuntime

/// Exponential backoff with full jitter: the delay before retry `n` (0-based) is uniform in
/// `0 ... min(maximum, base * 2^n)` ("Exponential Backoff And Jitter", AWS Architecture Blog).
public struct Backoff: Sendable {
    /// The first retry's upper bound. Default 50 ms.
    public var base: Duration = .milliseconds(50)
    /// The largest delay. Default 5 s.
    public var maximum: Duration = .seconds(5)
    /// Attempts per dial, the first included. Default 4.
    public var maximumAttempts = 4
    /// An overall bound on one dial with its retries; nil for none. Default 10 s.
    public var overallTimeout: Duration? = .seconds(10)
    /// After a dial has failed (all its attempts), further calls to that peer fail fast with
    /// `unavailable` for this long before one probes it again; doubled per failed probe up to
    /// `maximum`. Default 1 s.
    public var failFastPeriod: Duration = .seconds(1)

    /// The defaults.
    public init() {}

    /// The upper bound of the delay before retry `retry` (0-based). Settings of any size or sign
    /// give a delay in `0 ... maximum` (a negative one counts as zero), never a trap.
    public func ceiling(retry: Int) -> Duration {
        let factor = retry >= 62 ? Double.infinity : Double(UInt64(1) << UInt64(max(retry, 0)))
        let base = Double(max(self.base.nanosecondsClamped, 0))
        return .nanoseconds(Self.saturating(min(Double(max(maximum.nanosecondsClamped, 0)), base == 0 ? 0 : base * factor)))
    }

    /// The delay before retry `retry`: uniform in `0 ... ceiling(retry:)`.
    public func delay(retry: Int, using random: inout some RandomNumberGenerator) -> Duration {
        let ceiling = ceiling(retry: retry).nanosecondsClamped
        return .nanoseconds(ceiling <= 0 ? 0 : Int64.random(in: 0...ceiling, using: &random))
    }

    /// How long a peer fails fast after `failures` failed dials in a row (≥ 1).
    public func failFast(after failures: Int) -> Duration {
        let factor = Double(UInt64(1) << UInt64(min(max(failures - 1, 0), 30)))
        let period = Double(max(failFastPeriod.nanosecondsClamped, 0))
        return .nanoseconds(Self.saturating(min(Double(max(maximum.nanosecondsClamped, 0)), period * factor)))
    }

    /// Whole nanoseconds from a non-negative count, saturating at `Int64.max` (converting a
    /// `Double` at or past 2^63 would trap).
    private static func saturating(_ nanoseconds: Double) -> Int64 {
        nanoseconds >= Double(Int64.max) ? .max : nanoseconds > 0 ? Int64(nanoseconds) : 0
    }
}
