/// A queue a driver reads itself rather than through the ring (an RDMA completion queue), polled
/// by the core once a turn and all the while it is idle instead of parking, so that what lands
/// in it is taken up with no event, no wake-up and no task (``Core/addIdlePoller(_:for:)``).
/// While the core polls it, the driver may leave its notifications (events on the ring) off, and
/// turn them on in ``coreWillPark()``.
public protocol CoreIdlePoller: AnyObject {
    /// Polls once without blocking, on the core's thread, from its loop (outside any task).
    /// Returns whether it found work (done, or queued as jobs): an idle core then runs a turn,
    /// its end-of-turn actions included, before it polls again.
    func pollWhileIdle() -> Bool

    /// The core is done polling and about to park: the last moment to turn notifications back
    /// on, so that work landing later wakes it. Returns whether work was found meanwhile (the
    /// core then runs a turn and polls again instead of parking). The default does nothing.
    func coreWillPark() -> Bool
}

extension CoreIdlePoller {
    /// Nothing to turn on: the driver's notifications stay on while it is polled.
    public func coreWillPark() -> Bool { false }
}

extension Core {
    /// Has the core call `poller` once a turn and each time round while it polls instead of
    /// parking, and poll for at least `duration` after its last work before it parks (longer if
    /// ``Runtime/Configuration/idlePollTime`` says so). Adding a poller again sets its time.
    /// The core holds `poller` until ``removeIdlePoller(_:)`` or its stop.
    ///
    /// Idle polling trades a CPU for latency: a core with a poller never sleeps for the time.
    ///
    /// - Throws: ``RuntimeError/notOnCore(_:)`` off the core's thread; ``RuntimeError/shutDown(_:)``
    ///   once the core is stopping.
    public nonisolated func addIdlePoller(_ poller: any CoreIdlePoller, for duration: Duration) throws(RuntimeError) {
        guard executor.isOnCoreThread else {
            throw RuntimeError.notOnCore("Core.addIdlePoller off core \(index)'s thread")
        }
        guard !loop.isStopping else { throw RuntimeError.shutDown("core \(index) is stopping") }
        loop.addIdlePoller(poller, nanoseconds: UInt64(max(0, duration.nanosecondsClamped)))
    }

    /// Stops calling `poller` (``addIdlePoller(_:for:)``). Ignored if it is not there, or off the
    /// core's thread.
    public nonisolated func removeIdlePoller(_ poller: any CoreIdlePoller) {
        guard executor.isOnCoreThread else { return }
        loop.removeIdlePoller(poller)
    }
}
