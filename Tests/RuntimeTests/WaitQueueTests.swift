import NetRuntime
import NetTestSupport
import Testing

@Suite("Core wait queue", .timeLimit(.minutes(1)))
struct WaitQueueTests {
    @Test("A signal that comes while a waiter is still entering its wait is not lost")
    func earlySignal() async throws {
        try await withRuntime { runtime in
            let woken = try await runtime.run(on: 0) { core in
                let queue = CoreWaitQueue(core: core)
                var waiters: [Task<Bool, Never>] = []
                for _ in 0..<3 {
                    waiters.append(Task { _ = core; do { try await queue.wait(); return true } catch { return false } })
                }
                // Signal as soon as they are queued, which may be before they have suspended.
                while queue.isEmpty { await Task.yield() }
                queue.signalAll()
                var woken = 0
                for waiter in waiters where await waiter.value { woken += 1 }
                return woken
            }
            #expect(woken == 3)
        }
    }

    @Test("A wait with a deadline times out with ETIMEDOUT; signalOne wakes the longest waiter")
    func deadlineAndOrder() async throws {
        try await withRuntime { runtime in
            let (timedOut, first) = try await runtime.run(on: 0) { core in
                let queue = CoreWaitQueue(core: core)
                let timedOut: Bool
                do {
                    try await queue.wait(deadline: .now + .milliseconds(5))
                    timedOut = false
                } catch let error as IOError {
                    timedOut = error.isTimeout
                }
                let a = Task { _ = core; try? await queue.wait(); return "a" }
                while queue.isEmpty { await Task.yield() }
                let b = Task { _ = core; try? await queue.wait(); return "b" }
                await Task.yield()
                queue.signalOne()
                let first = await a.value
                queue.signalAll()
                _ = await b.value
                return (timedOut, first)
            }
            #expect(timedOut)
            #expect(first == "a")
        }
    }

    @Test("An uncancellable wait outlives its task's cancellation and ends at the next signal; a cancellable one ends with CancellationError")
    func uncancellableWait() async throws {
        try await withRuntime { runtime in
            let (kept, ended) = try await runtime.run(on: 0) { core in
                let queue = CoreWaitQueue(core: core)
                let keeper = Task { _ = core; do { try await queue.wait(cancellable: false); return "signalled" } catch { return "\(error)" } }
                while queue.isEmpty { await Task.yield() }
                keeper.cancel()
                try await core.nop()  // a turn later: a cancellable wait would have ended by now
                let other = Task { _ = core; do { try await queue.wait(); return "signalled" } catch { return error is CancellationError ? "cancelled" : "\(error)" } }
                await Task.yield()
                other.cancel()
                let ended = await other.value
                queue.signalAll()
                return (await keeper.value, ended)
            }
            #expect(kept == "signalled")
            #expect(ended == "cancelled")
        }
    }
}
