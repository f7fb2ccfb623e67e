import NetRuntime
import NetTestSupport
import Testing

/// A driver's queue stand-in: it has work when armed, and hands it over by waking the waiter.
final class ArmedPoller: CoreIdlePoller {
    let waiters: CoreWaitQueue
    var armed = false
    /// Whether the work is found only when the core says it is about to park.
    var armedForPark = false
    var calls = 0
    var parks = 0
    var thread: Int32 = 0
    init(core: Core) { waiters = CoreWaitQueue(core: core) }
    func pollWhileIdle() -> Bool {
        calls += 1
        thread = Core.currentThreadID
        guard armed else { return false }
        armed = false
        waiters.signalOne()
        return true
    }
    func coreWillPark() -> Bool {
        parks += 1
        guard armedForPark else { return false }
        armedForPark = false
        waiters.signalOne()
        return true
    }
}

@Suite("Core idle pollers", .timeLimit(.minutes(1)))
struct CoreIdlePollerTests {
    @Test("An idle core polls its pollers on its thread instead of parking, and stops once one is removed")
    func idlePollerIsPolled() async throws {
        try await withRuntime(cores: 1) { runtime in
            let (woken, onCore, callsAfterRemoval) = try await runtime.run(on: 0) { core in
                let poller = ArmedPoller(core: core)
                try core.addIdlePoller(poller, for: .seconds(30))
                // Nothing else wakes the core: only the poller can end this wait before its bound.
                poller.armed = true
                var woken = true
                do { try await poller.waiters.wait(deadline: Deadline.now + .seconds(20)) } catch { woken = false }
                let onCore = poller.thread == Core.currentThreadID
                core.removeIdlePoller(poller)
                let calls = poller.calls
                // Turns that each wait for the ring: a poller still held would be called in them.
                for _ in 0..<10 { try await core.nop() }
                return (woken, onCore, poller.calls - calls)
            }
            #expect(woken)
            #expect(onCore)
            #expect(callsAfterRemoval == 0)
        }
    }

    @Test("Once its polling time is up with nothing found (even no time at all), the core tells its pollers before it parks, and work they find then keeps it up")
    func pollerToldBeforePark() async throws {
        try await withRuntime(cores: 1) { runtime in
            let (woken, polledFirst) = try await runtime.run(on: 0) { core in
                let poller = ArmedPoller(core: core)
                try core.addIdlePoller(poller, for: .zero)
                // Only the call before the park can end this wait before its bound.
                poller.armedForPark = true
                var woken = true
                do { try await poller.waiters.wait(deadline: Deadline.now + .seconds(20)) } catch { woken = false }
                core.removeIdlePoller(poller)
                return (woken, poller.calls > 0)
            }
            #expect(woken)
            #expect(polledFirst)
        }
    }

    @Test("Adding a poller off its core's thread is refused")
    func offCoreRefused() async throws {
        try await withRuntime(cores: 1) { runtime in
            let core = runtime.cores[0]
            final class Idle: CoreIdlePoller { func pollWhileIdle() -> Bool { false } }
            #expect(throws: RuntimeError.self) { try core.addIdlePoller(Idle(), for: .milliseconds(1)) }
        }
    }
}
