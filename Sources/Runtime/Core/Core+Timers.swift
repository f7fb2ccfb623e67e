extension Core {
    /// Suspends the calling task until `deadline`, on the core's own timers.
    ///
    /// - Throws: `CancellationError` if the task is cancelled first.
    public nonisolated func sleep(until deadline: Deadline) async throws {
        try Task.checkCancellation()
        let loop = try loopOnThisThread(.poll)
        let id = loop.table.reserve()
        let executor = self.executor
        let completion = await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Completion, Never>) in
                loop.startSleep(id, until: deadline, continuation: continuation)
            }
        } onCancel: {
            executor.requestCancel(id)
        }
        loop.table.release(id)
        if completion.result < 0 {
            if Task.isCancelled { throw CancellationError() }
            throw RuntimeError.shutDown("core \(index) stopped during a sleep")
        }
    }

    /// Suspends the calling task for `duration`, on the core's own timers.
    public nonisolated func sleep(for duration: Duration) async throws {
        try await sleep(until: .now + duration)
    }
}
