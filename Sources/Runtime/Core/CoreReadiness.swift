#if canImport(Glibc)
import Glibc
#endif

/// Work a core runs when a descriptor becomes readable (``Core/whenReadable(_:_:)``): no task, no
/// continuation and no job per event. For code that serves a descriptor for as long as the core
/// runs (RDMA's completion channel): it serves, then asks again.
public protocol CoreReadinessHandler: AnyObject {
    /// Called once per ``Core/whenReadable(_:_:)``, on the core's thread, from the core's loop
    /// between turns (outside any task): `result` is the poll's events (> 0), or `-errno`.
    /// `-ECANCELED` means the core is stopping: the watch has ended, and asking again throws.
    func coreDescriptorIsReadable(_ result: Int32)
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
        loop.startWatch(.poll(fd: fd, events: UInt32(POLLIN)), handler)
    }
}
