import NetRuntime
import NetTestSupport
import Synchronization
import Testing

/// Records when the core runs it at the end of a turn.
final class TurnEndRecorder: CoreTurnEndAction {
    var runs = 0
    var sawJobDone = false
    var jobDone = false
    var thread: Int32 = 0
    var again: Core?
    func coreTurnDidEnd() {
        runs += 1
        sawJobDone = jobDone
        thread = Core.currentThreadID
        if let core = again {
            again = nil
            try? core.runAtEndOfTurn(self)
        }
    }
}

@Suite("Core spawn and end of turn", .timeLimit(.minutes(1)))
struct CoreSpawnTests {
    @Test("A task spawned on a core keeps its non-Sendable state on the core's thread, and its completions resume there without the global pool")
    func spawnStaysOnCore() async throws {
        try await withRuntime(cores: 1) { runtime in
            let (ok, remoteJobs) = try await runtime.run(on: 0) { core in
                let counter = CoreLocalCounter()
                let before = core.statistics.remoteJobs
                let task = try core.spawn { () async -> Bool in
                    var ok = true
                    for _ in 0..<200 {
                        try? await core.nop()
                        counter.value += 1
                        ok = ok && Core.currentThreadID == counter.thread
                    }
                    return ok
                }
                let ok = await task.value
                // A completion resumed through the global pool comes back as a job from
                // another thread; 200 of them would show here.
                return (ok && counter.value == 200, core.statistics.remoteJobs - before)
            }
            #expect(ok)
            #expect(remoteJobs < 20)
        }
    }

    @Test("Spawning from another thread is refused with notOnCore")
    func spawnOffCore() async throws {
        try await withRuntime(cores: 1) { runtime in
            let core = try runtime.core(0)
            #expect(throws: RuntimeError.self) { try core.spawn { () async -> Void in } }
            #expect(throws: RuntimeError.self) { try core.runAtEndOfTurn(TurnEndRecorder()) }
        }
    }

    @Test("An end-of-turn action runs once, on the core, after the job that registered it; one it registers again runs next turn")
    func endOfTurn() async throws {
        try await withRuntime(cores: 1) { runtime in
            let (runs, sawJobDone, onCore, reran) = try await runtime.run(on: 0) { core in
                let recorder = TurnEndRecorder()
                try core.runAtEndOfTurn(recorder)
                recorder.jobDone = true  // same job, after registering: the action must see it
                #expect(recorder.runs == 0)
                // A ring no-op completes in a later turn, so this turn's actions have run by then.
                try await core.nop()
                let firstRuns = recorder.runs
                let onCore = recorder.thread == Core.currentThreadID
                recorder.again = core
                try core.runAtEndOfTurn(recorder)
                try await core.nop()  // this turn's end: the second run, which registers again
                try await core.nop()  // the next turn's end: the third
                return (firstRuns, recorder.sawJobDone, onCore, recorder.runs)
            }
            #expect(runs == 1)
            #expect(sawJobDone)
            #expect(onCore)
            #expect(reran == 3)
        }
    }

    @Test("Once a core has stopped, runAtEndOfTurn throws shutDown rather than keep an action that would never run; actions registered during the last writes still run")
    func endOfTurnAfterStop() async throws {
        let seen = StopRecord()
        try await withRuntime(cores: 1) { runtime in
            try await runtime.run(on: 0) { core in
                // Registered in the core's last turn: it registers itself once more while the
                // loop runs its last end-of-turn actions.
                let last = TurnEndRecorder()
                last.again = core
                try core.runAtEndOfTurn(last)
                // Dropped with the core's locals, after its loop has ended, on its thread.
                _ = try core.local(StopWitness.self) { StopWitness(core: core, last: last, seen: seen) }
            }
        }
        #expect(seen.state.withLock { $0.lastRuns } == 2)
        #expect(seen.state.withLock { $0.afterStop?.isShutDown } == true)
    }

    @Test("A task that yields until the turn's end resumes after the jobs queued before it and after the end-of-turn actions they registered")
    func yieldUntilTurnEnd() async throws {
        try await withRuntime(cores: 1) { runtime in
            let (order, offCoreRefused) = try await runtime.run(on: 0) { core in
                let log = OrderLog()
                let box = HandleBox()
                let recorder = TurnEndRecorder()
                let waiter = try await spawnSuspended(core, box) { () async -> Void in
                    _ = try? await suspendOnCore(core, cancellable: false) { handle in
                        box.handle = handle
                        core.resume(box.test!)
                    }
                    log.entries.append("resumed")
                    try? core.runAtEndOfTurn(recorder)
                }
                core.resume(box.handle!)  // queues the waiter's job
                try await core.yieldUntilTurnEnd()
                log.entries.append("yielder (action ran \(recorder.runs) times)")
                await waiter.value
                let refused = await Task.detached { () async -> Bool in
                    do { try await core.yieldUntilTurnEnd(); return false } catch { return true }
                }.value
                return (log.entries, refused)
            }
            #expect(order == ["resumed", "yielder (action ran 1 times)"])
            #expect(offCoreRefused)
        }
    }
}

/// A core local that, when its stopped core drops it, tries to register an end-of-turn action.
final class StopWitness {
    let core: Core
    let last: TurnEndRecorder
    let seen: StopRecord
    init(core: Core, last: TurnEndRecorder, seen: StopRecord) {
        self.core = core
        self.last = last
        self.seen = seen
    }
    deinit {
        var failure: RuntimeError?
        do { try core.runAtEndOfTurn(TurnEndRecorder()) } catch { failure = error }
        let runs = last.runs
        seen.state.withLock { $0 = (runs, failure) }
    }
}

/// What ``StopWitness`` saw, read by the test after the runtime has stopped.
final class StopRecord: Sendable {
    let state = Mutex<(lastRuns: Int, afterStop: RuntimeError?)>((0, nil))
}

/// A list of events, in the order tasks on one core recorded them.
final class OrderLog {
    var entries: [String] = []
}

/// Where a test keeps the handles of a suspended task and of the test itself (on the core).
final class HandleBox {
    var handle: CoreWakeHandle?
    var test: CoreWakeHandle?
}

/// Spawns `wait` (a task that suspends, registering its handle in `box`) and returns once that
/// task has suspended: its registration resumes the test's own suspension, with no polling.
func spawnSuspended<T>(
    _ core: Core, _ box: HandleBox, _ wait: @escaping @concurrent () async -> T
) async throws -> Task<T, Never> {
    let task = try core.spawn(wait)
    // The spawned task runs only once this suspends, so `box.test` is set before it registers.
    _ = try await suspendOnCore(core) { box.test = $0 }
    return task
}

@Suite("Suspension on a core", .timeLimit(.minutes(1)))
struct SuspensionTests {
    @Test("A non-cancellable suspension outlives its task's cancellation and returns the resume's result; a cancellable one throws")
    func nonCancellable() async throws {
        try await withRuntime(cores: 1) { runtime in
            let (kept, cancelled) = try await runtime.run(on: 0) { core in
                let box = HandleBox()
                let waiter = try await spawnSuspended(core, box) { () async -> Int32 in
                    (try? await suspendOnCore(core, cancellable: false) { handle in
                        box.handle = handle
                        core.resume(box.test!)
                    }) ?? -1
                }
                waiter.cancel()
                try await core.nop()  // a turn later: a cancellable wait would have ended by now
                core.resume(box.handle!, result: 7)
                let kept = await waiter.value

                let other = HandleBox()
                let cancellable = try await spawnSuspended(core, other) { () async -> Bool in
                    do {
                        _ = try await suspendOnCore(core) { handle in
                            other.handle = handle
                            core.resume(other.test!)
                        }
                        return false
                    } catch {
                        return error is CancellationError
                    }
                }
                cancellable.cancel()
                return (kept, await cancellable.value)
            }
            #expect(kept == 7)
            #expect(cancelled)
        }
    }
}
