import NetRuntime
import NetTestSupport
import Testing

/// A driver's queue stand-in: it has work when armed, and hands it over by waking the waiter.
final class ArmedPoller: CoreIdlePoller {
    let waiters: CoreWaitQueue
    var armed = false
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
        return false
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
                try await core.sleep(for: .milliseconds(20))
                return (woken, onCore, poller.calls - calls)
            }
            #expect(woken)
            #expect(onCore)
            #expect(callsAfterRemoval == 0)
        }
    }

    @Test("Once its polling time is up with nothing found (even no time at all), the core tells its pollers before it parks")
    func pollerToldBeforePark() async throws {
        try await withRuntime(cores: 1) { runtime in
            let parks = try await runtime.run(on: 0) { core in
                let poller = ArmedPoller(core: core)
                try core.addIdlePoller(poller, for: .zero)
                // The sleep's timer parks the core: a poller of no time still hears of it.
                try await core.sleep(for: .milliseconds(50))
                core.removeIdlePoller(poller)
                return poller.parks
            }
            #expect(parks >= 1)
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
