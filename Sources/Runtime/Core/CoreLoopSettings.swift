/// What a core's loop takes from ``Runtime/Configuration``, checked once at start.
struct CoreLoopSettings: Sendable {
    /// ``Runtime/Configuration/handOffJobsPerTurn``, at least 0.
    var handOffJobsPerTurn: Int
    /// ``Runtime/Configuration/idlePollTime`` in nanoseconds; 0 parks at once.
    var idlePollNanoseconds: UInt64

    init(handOffJobsPerTurn: Int = 256, idlePollNanoseconds: UInt64 = 0) {
        self.handOffJobsPerTurn = max(handOffJobsPerTurn, 0)
        self.idlePollNanoseconds = idlePollNanoseconds
    }

    init(_ configuration: Runtime.Configuration) {
        self.init(
            handOffJobsPerTurn: configuration.handOffJobsPerTurn,
            idlePollNanoseconds: UInt64(max(configuration.idlePollTime.nanosecondsClamped, 0)))
    }
}
