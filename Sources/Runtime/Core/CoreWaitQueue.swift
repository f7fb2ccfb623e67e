import DequeModule

/// Tasks on one core waiting for a condition that code on the same core will signal: a write
/// queue with room again, a credit returned. Waits are cancellable (through the core's own
/// cancellation path, so a cancel from any thread is safe) and may carry a deadline.
///
/// Non-Sendable: it belongs to its core, like the objects that use it.
public final class CoreWaitQueue {
    /// The core whose tasks wait here.
    public let core: Core
    // Confined to the core's thread (non-Sendable): no dynamic exclusivity checks, which cost a
    // thread-local lookup on every wait and signal.
    @exclusivity(unchecked) private var waiters = Deque<OperationID>()
    /// A signal that found no waiter, kept for the next wait: a task that checked its condition
    /// and then called `wait` may have been suspended in between (calling `wait` can hop), and
    /// must not miss a signal sent meanwhile. Costs at most one spurious wake-up.
    @exclusivity(unchecked) private var permit = false

    /// A wait queue for tasks on `core`.
    public init(core: Core) {
        self.core = core
    }

    /// Whether no task waits.
    public var isEmpty: Bool { waiters.isEmpty }

    /// Waits until signalled. Callers re-check their condition afterwards: a signal says
    /// "look again", not "it is yours". A signal sent while no task waited is kept for the
    /// next wait, which then returns at once.
    ///
    /// With `cancellable` false, task cancellation does not end the wait (a signal, the deadline
    /// or the core's stop does), and the wait costs no cancellation handler.
    ///
    /// - Throws: `CancellationError` if the task is cancelled, ``IOError`` `ETIMEDOUT` if
    ///   `deadline` passes first, ``RuntimeError/notOnCore(_:)`` off the core.
    public func wait(
        deadline: Deadline? = nil, cancellable: Bool = true
    ) async throws {
        if cancellable { try Task.checkCancellation() }
        if permit {
            permit = false
            return
        }
        let (executor, id) = try reserveSleep(on: core, until: deadline)
        waiters.append(id)
        // A signal between `reserve` and the sleep is kept by the loop (`wake` on a reserved
        // operation) and ends the sleep as it begins.
        let completion = await sleep(id, executor: executor, cancellable: cancellable)
        executor.withLoop { $0.table.release(id) }
        switch completion.result {
        case 0:
            return
        case 1:
            throw IOError(code: ETIMEDOUT, operation: .poll)
        default:
            if cancellable && Task.isCancelled { throw CancellationError() }
            throw RuntimeError.shutDown("core \(core.index) stopped during a wait")
        }
    }

    /// Wakes every waiting task.
    public func signalAll() {
        guard !waiters.isEmpty, let loop = try? core.loopOnThisThread(.poll) else {
            permit = true
            return
        }
        let woken = waiters
        waiters.removeAll(keepingCapacity: true)
        for id in woken { loop.wake(id, result: 0) }
    }

    /// Wakes the task that has waited longest, if any is still waiting.
    public func signalOne() {
        // No waiter (a busy-polling receiver finds its message itself): keep the signal, and
        // skip the thread check, which costs a throwing call.
        guard !waiters.isEmpty else {
            permit = true
            return
        }
        guard core.executor.isOnCoreThread else { return }
        let woke = core.executor.withLoop { loop in
            while let id = waiters.popFirst() {
                if loop.wake(id, result: 0) { return true }
            }
            return false
        }
        if !woke { permit = true }
    }
}

#if canImport(Glibc)
import Glibc
#endif
