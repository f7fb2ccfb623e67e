extension Duration {
    /// The duration in whole nanoseconds, saturating at `Int64`'s bounds (about ±292 years): a
    /// configured limit of any size converts without trapping.
    public var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = ns.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? .min : .max }
        return sum
    }

    /// The duration in whole milliseconds, saturating at `Int32`'s bounds: for the system calls
    /// and C libraries that take an `int` of milliseconds (`TCP_USER_TIMEOUT`, rdma_cm).
    public var millisecondsClamped: Int32 {
        Int32(clamping: nanosecondsClamped / 1_000_000)
    }
}
