#if canImport(Glibc)
import Glibc
#endif

/// Work a core runs when a descriptor becomes readable (``Core/whenReadable(_:_:)``): no task, no
/// continuation and no job per event. For code that serves a descriptor for as long as the core
/// runs (RDMA's completion channel): it serves, then asks again.
public protocol CoreReadinessHandler: CoreCompletionHandler {
    /// Called once per ``Core/whenReadable(_:_:)`` (once per readiness for
    /// ``Core/watchReadable(_:_:)``), on the core's thread, from the core's loop between turns
    /// (outside any task): `result` is the poll's events (> 0), or `-errno`, which ends the
    /// watch. `-ECANCELED` means the watch was cancelled or the core is stopping.
    func coreDescriptorIsReadable(_ result: Int32)
}

extension CoreReadinessHandler {
    /// A readiness watch's completion is its readiness.
    @inline(__always)
    public func coreOperationCompleted(_ result: Int32) { coreDescriptorIsReadable(result) }
}

/// A repeating readiness watch (``Core/watchReadable(_:_:)``), to cancel it with
/// ``Core/cancelWatch(_:)``.
public struct CoreReadinessWatch: Hashable, Sendable {
    let id: OperationID
}

extension Core {
    /// Calls `handler` once, from the core's loop, when `fd` is readable (at once if it already
    /// is). The core holds `handler` until then. The call comes before the turn's jobs run, so
    /// tasks it resumes run in that turn.
    ///
    /// - Throws: ``RuntimeError/notOnCore(_:)`` off the core's thread; ``RuntimeError/shutDown(_:)``
    ///   once the core is stopping.
    public nonisolated func whenReadable(_ fd: Int32, _ handler: any CoreReadinessHandler) throws(RuntimeError) {
        guard executor.isOnCoreThread else {
            throw RuntimeError.notOnCore("Core.whenReadable off core \(index)'s thread")
        }
        guard !loop.isStopping else { throw RuntimeError.shutDown("core \(index) is stopping") }
        loop.startWatch(fd: fd, handler, repeating: false)
    }

    /// Calls `handler` from the core's loop each time `fd` becomes readable (at once if it
    /// already is), until ``cancelWatch(_:)`` or the core's stop, which call it a last time with
    /// `-ECANCELED`. On io_uring one multishot poll stays armed for the watch's life, so a
    /// readiness costs no submission, where ``whenReadable(_:_:)`` arms a poll each time.
    ///
    /// Readiness is reported when it arrives (edge): a handler that leaves the descriptor
    /// readable is not called again until it is woken anew, and wake-ups that come together may
    /// be reported once. It suits a descriptor whose readiness is a hint, as a completion
    /// channel's (its handler re-arms the completion queue and polls it until it is empty);
    /// a descriptor whose every byte must be read wants ``whenReadable(_:_:)``.
    ///
    /// - Throws: ``RuntimeError/notOnCore(_:)`` off the core's thread; ``RuntimeError/shutDown(_:)``
    ///   once the core is stopping.
    public nonisolated func watchReadable(_ fd: Int32, _ handler: any CoreReadinessHandler) throws(RuntimeError) -> CoreReadinessWatch {
        guard executor.isOnCoreThread else {
            throw RuntimeError.notOnCore("Core.watchReadable off core \(index)'s thread")
        }
        guard !loop.isStopping else { throw RuntimeError.shutDown("core \(index) is stopping") }
        return CoreReadinessWatch(id: loop.startWatch(fd: fd, handler, repeating: true))
    }

    /// Ends a watch of ``watchReadable(_:_:)``: its handler is called a last time with
    /// `-ECANCELED` (from the loop, not from this call). Ignored if the watch has ended. Call on
    /// the core's thread; elsewhere it does nothing.
    public nonisolated func cancelWatch(_ watch: CoreReadinessWatch) {
        guard executor.isOnCoreThread else { return }
        loop.cancel(watch.id)
    }
}
