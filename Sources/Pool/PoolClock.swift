public import NetRuntime

/// Where the pool and the manager read the time: the monotonic clock, or a test's own.
public protocol PoolClock: Sendable {
    /// Now.
    func now() -> Deadline
}

/// The monotonic clock (`CLOCK_MONOTONIC`).
public struct MonotonicPoolClock: PoolClock {
    public init() {}
    public func now() -> Deadline { .now }
}
