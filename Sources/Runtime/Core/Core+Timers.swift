extension Core {
    /// Suspends the calling task until `deadline`, on the core's own timers.
    ///
    /// - Throws: `CancellationError` if the task is cancelled first.
    public nonisolated func sleep(until deadline: Deadline) async throws {
        try await sleepOnCore(self, until: deadline)
    }

    /// Suspends the calling task for `duration`, on the core's own timers.
    public nonisolated func sleep(for duration: Duration) async throws {
        try await sleepOnCore(self, until: .now + duration)
    }
}

/// Sleeps on `core`'s timers until `deadline`; cancelling the task ends the sleep.
func sleepOnCore(_ core: Core, until deadline: Deadline) async throws {
    try Task.checkCancellation()
    let loop = try core.loopOnThisThread(.poll)
    let id = loop.table.reserve()
    let completion = await awaitCancellable(id, executor: core.executor) {
        loop.startSleep(id, until: deadline, continuation: $0)
    }
    loop.table.release(id)
    if completion.result < 0 {
        if Task.isCancelled { throw CancellationError() }
        throw RuntimeError.shutDown("core \(core.index) stopped during a sleep")
    }
}
