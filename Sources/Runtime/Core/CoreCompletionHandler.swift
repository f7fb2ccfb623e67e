#if canImport(Glibc)
import Glibc
#endif

/// Work a core runs when one of its operations completes, in place of a task that awaits it:
/// no continuation, no job and no task switch per completion. For a driver's own loop, such as a
/// receive handler's reads (``Core/receive(_:into:flags:deadline:pollFirst:then:)``); readiness watches
/// (``CoreReadinessHandler``) are the same kind of work.
public protocol CoreCompletionHandler: AnyObject {
    /// Called once per operation started with this handler, on the core's thread, from the core's
    /// loop between turns (outside any task, before the turn's jobs run, so tasks it resumes run
    /// in that turn): `result` is the operation's (a byte count for a receive), or `-errno`.
    /// `-ETIMEDOUT` means its deadline passed; `-ECANCELED` that it was cancelled (its descriptor
    /// closed or shut down) or the core is stopping.
    func coreOperationCompleted(_ result: Int32)
}

extension Core {
    /// Receives into `buffer` once, then calls `handler` from the core's loop with the byte count
    /// (0 at end of stream) or `-errno`. The core holds `handler` until then. `buffer` must stay
    /// valid until the call. ``cancelOperations(on:)`` and ``close(_:)`` end it with
    /// `-ECANCELED`, and the core's stop does too.
    ///
    /// - Parameter deadline: when it passes first, the receive is cancelled and `handler` gets
    ///   `-ETIMEDOUT`.
    /// - Parameter pollFirst: wait for readability before the first attempt (see
    ///   ``recv(_:into:flags:deadline:pollFirst:cancellable:)``).
    /// - Throws: ``RuntimeError/notOnCore(_:)`` off the core's thread.
    public nonisolated func receive(
        _ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0, deadline: Deadline? = nil,
        pollFirst: Bool = false, then handler: any CoreCompletionHandler
    ) throws(RuntimeError) {
        guard executor.isOnCoreThread else { throw RuntimeError.notOnCore("Core.receive off core \(index)'s thread") }
        let loop: CoreLoop = executor.loop
        loop.start(
            loop.table.reserve(), .recv(fd: fd, buffer: buffer, flags: flags, pollFirst: pollFirst), deadline: deadline,
            handler: handler)
    }
}
