/// Counters of one core, for tests, benchmarks and metrics.
public struct CoreStatistics: Sendable, Hashable {
    /// Jobs run on the core.
    public var jobsRun = 0
    /// Jobs run isolated to the core's actor (enqueued on its serial executor).
    public var isolatedJobsRun = 0
    /// Turns of the core's loop: each runs the ready jobs, then submits and reaps I/O (or parks).
    public var turns = 0
    /// Jobs that arrived from other threads.
    public var remoteJobs = 0
    /// Times the core parked in the kernel.
    public var parks = 0
    /// Times the idle core polled instead of parking at once
    /// (``Runtime/Configuration/idlePollTime``).
    public var idlePolls = 0
    /// Idle polls that found work (a completion, a job from another thread) before their time
    /// ran out: each spared a park and the wake-up after it.
    public var idlePollsEndedByWork = 0
    /// Operations completed.
    public var operationsCompleted = 0
    /// Times a submission found the submission queue full and the core submitted, reaped and
    /// retried.
    public var submissionQueueFull = 0
    /// Operations and sleeps started and not yet ended, now.
    public var pendingOperations = 0
    /// Timer entries the core holds now: deadlines and sleeps, including some whose operation
    /// has already ended and that the core has yet to drop (never more than about twice the
    /// live ones).
    public var timerEntries = 0

    /// All zero.
    public init() {}
}
