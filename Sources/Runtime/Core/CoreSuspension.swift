#if canImport(Glibc)
import Glibc
#endif

/// Names one suspended task of a core, so that code on the same core can resume it with
/// ``Core/resume(_:result:)``: the reply to an RPC, a credit returned.
public struct CoreWakeHandle: Hashable, Sendable {
    let id: OperationID
    public static func == (a: CoreWakeHandle, b: CoreWakeHandle) -> Bool { a.id.token == b.id.token }
    public func hash(into hasher: inout Hasher) { hasher.combine(id.token) }
}

/// Suspends the current task on `core` until ``Core/resume(_:result:)`` names the handle that
/// `register` was given, the deadline passes, or the task is cancelled. `register` runs before
/// the task suspends (store the handle where the resumer will find it); a resume that comes
/// before the suspension itself is kept, never lost. No allocation.
///
/// With `cancellable` false the wait ignores task cancellation (it ends only by a resume, the
/// deadline or the core stopping) and costs no cancellation record: for a task whose owner
/// always resumes it, such as a worker parked between jobs.
///
/// - Returns: the `result` given to `resume` (a value of the caller's choosing, ≥ 0).
/// - Throws: `CancellationError`, ``IOError`` `ETIMEDOUT` past `deadline`,
///   ``RuntimeError/shutDown(_:)`` if the core stops, ``RuntimeError/notOnCore(_:)`` off it.
public func suspendOnCore(
    _ core: Core, deadline: Deadline? = nil, cancellable: Bool = true,
    register: (CoreWakeHandle) -> Void
) async throws -> Int32 {
    if cancellable { try Task.checkCancellation() }
    let (executor, id) = try reserveSleep(on: core, until: deadline)
    register(CoreWakeHandle(id: id))
    let completion = await sleep(id, executor: executor, cancellable: cancellable)
    executor.withLoop { $0.table.release(id) }
    // The timer's timeout completes with 1, a resume with its result + 2, a cancel below 0.
    if completion.result == 1 { throw IOError(code: ETIMEDOUT, operation: .poll) }
    if completion.result >= 2 { return completion.result - 2 }
    if cancellable && Task.isCancelled { throw CancellationError() }
    throw RuntimeError.shutDown("core \(core.index) stopped during a wait")
}

/// Suspends the task with a continuation that `start` is given, without the executor check
/// that `withUnsafeContinuation` makes before it: its `isolated` parameter makes Swift 6.3 hop
/// to the caller's isolation first, a look-up of the task's executor preference under its
/// status-record lock, though nonisolated(nonsending) code is already there. The check after the
/// resume stays (the caller's own), so the task goes on in its isolation as before. Call it only
/// from nonisolated(nonsending) code, and inline it, so that the caller makes that check.
@inline(__always)
func withCoreContinuation<T>(_ start: (UnsafeContinuation<T, Never>) -> Void) async -> T {
    await _unsafeInheritExecutor_withUnsafeContinuation(start)
}

/// Reserves the operation of a wait about to begin on `core`, with its timeout at `deadline`:
/// the core's executor, to sleep on, and the operation. The loop is used without a retain.
///
/// - Throws: ``RuntimeError/notOnCore(_:)`` off the core's thread.
@inline(__always)
func reserveSleep(on core: Core, until deadline: Deadline?) throws(RuntimeError) -> (CoreExecutor, OperationID) {
    let executor = core.executor
    guard executor.isOnCoreThread else { throw core.notOnCoreError(.poll) }
    let id = executor.withLoop { loop in
        let id = loop.table.reserve()
        if let deadline { loop.timers.schedule(id, at: deadline, action: .timeout) }
        return id
    }
    return (executor, id)
}

/// Sleeps as the reserved operation `id` of `executor`'s loop until it is woken, its timer fires
/// or (when `cancellable`) the task is cancelled, and returns the completion that ended it. The
/// waits of ``suspendOnCore(_:deadline:cancellable:register:)`` and ``CoreWaitQueue`` share it.
@inline(__always)
func sleep(_ id: OperationID, executor: CoreExecutor, cancellable: Bool) async -> Completion {
    guard cancellable else {
        // No cancellation record: adding and removing one takes the task's status lock twice.
        return await withCoreContinuation { (continuation: UnsafeContinuation<Completion, Never>) in
            executor.withLoop { $0.startSleep(id, until: nil, continuation: continuation) }
        }
    }
    return await awaitCancellable(id, executor: executor) { continuation in
        executor.withLoop { $0.startSleep(id, until: nil, continuation: continuation) }
    }
}

extension Core {
    /// Resumes the task suspended with `handle` (see ``suspendOnCore(_:deadline:cancellable:register:)``)
    /// with `result` (≥ 0). Returns false if it has already ended (cancelled, timed out).
    /// Call on the core's thread.
    @discardableResult
    public nonisolated func resume(_ handle: CoreWakeHandle, result: Int32 = 0) -> Bool {
        precondition(result >= 0 && result < Int32.max - 2, "resume results are small non-negative values")
        guard let loop = try? loopOnThisThread(.poll) else { return false }
        return loop.wake(handle.id, result: result + 2)
    }
}
