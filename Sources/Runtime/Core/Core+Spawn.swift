extension Core {
    /// Starts a task on this core from code already running on it: a task per connection, a
    /// reader loop, a writer. The task prefers the core's executor, so every completion it awaits
    /// resumes on the core without a hop through the global pool, and `body` is nonisolated so
    /// each await costs one job (docs/RUNTIME.md). `body` may capture the core's non-Sendable
    /// objects (connections, buffers): they stay on the core's thread.
    ///
    /// Prefer this to `Task { }`: a task without the core's executor preference resumes every
    /// completion through Swift's global pool, at tens of times the cost and a futex wake-up each.
    ///
    /// - Throws: ``RuntimeError/notOnCore(_:)`` off the core's thread (the captured objects would
    ///   otherwise leave it).
    @discardableResult
    public nonisolated func spawn<T>(
        _ body: @escaping @concurrent () async -> T
    ) throws(RuntimeError) -> Task<T, Never> {
        let body = try confined(body)
        return Task(executorPreference: executor) { @concurrent in await body() }
    }

    /// ``spawn(_:)-(()->T)`` for a body that throws: the task's value is its result or error.
    @discardableResult
    public nonisolated func spawn<T>(
        _ body: @escaping @concurrent () async throws -> T
    ) throws(RuntimeError) -> Task<T, any Error> {
        let body = try confined(body)
        return Task(executorPreference: executor) { @concurrent in try await body() }
    }

    /// Hands `body` to a task on this core: the one unsafe boundary of both `spawn`s.
    private nonisolated func confined<Body>(_ body: Body) throws(RuntimeError) -> sending Body {
        guard isCurrent else { throw RuntimeError.notOnCore("Core.spawn off core \(index)'s thread") }
        nonisolated(unsafe) let body = body  // Unsafe boundary: checked above to be on this core, and the task it goes to runs only on this core's executor.
        return body
    }
}
