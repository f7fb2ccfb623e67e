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

/// Sleeps on `core`'s timers; `isolation` is used inside the cancellation handler's operation,
/// as in ``performOperation(on:_:deadline:isolation:prepare:read:)``.
func sleepOnCore(_ core: Core, until deadline: Deadline, isolation: isolated (any Actor)? = #isolation) async throws {
    try Task.checkCancellation()
    let loop = try core.loopOnThisThread(.poll)
    let id = loop.table.reserve()
    let executor = core.executor
    // Uses `isolation` inside the operation: see `performOperation` for why.
    let completion = await withTaskCancellationHandler {
        _ = isolation
        return await withUnsafeContinuation { (continuation: UnsafeContinuation<Completion, Never>) in
            loop.startSleep(id, until: deadline, continuation: continuation)
        }
    } onCancel: {
        executor.requestCancel(id)
    }
    loop.table.release(id)
    if completion.result < 0 {
        if Task.isCancelled { throw CancellationError() }
        throw RuntimeError.shutDown("core \(core.index) stopped during a sleep")
    }
}
