import NetRuntime
import NetTestSupport
import Testing

@Suite("Core wait queue signals", .timeLimit(.minutes(1)))
struct CoreWaitQueueSignalTests {
    @Test("A signal that comes while the waiter has queued but not yet slept is not lost")
    func signalBeforeSleep() async throws {
        let runtime = try Runtime(configuration: .defaults { $0.coreCount = 1 })
        let results = try await runtime.run(on: 0) { core -> [Bool] in
            var results: [Bool] = []
            for _ in 0..<20 {
                let queue = CoreWaitQueue(core: core)
                let waiter = Task {
                    _ = core
                    do {
                        try await queue.wait(deadline: .now + .seconds(1))
                        return true
                    } catch {
                        return false
                    }
                }
                // Signal as soon as the waiter has queued, whether or not it sleeps yet.
                while queue.isEmpty { await Task.yield() }
                queue.signalAll()
                results.append(await waiter.value)
            }
            return results
        }
        await runtime.stop()
        #expect(results == Array(repeating: true, count: 20))
    }
}
