import NetRuntime
import NetTestSupport
import Testing

/// A nonisolated async helper: with NonisolatedNonsendingByDefault it runs on its caller's
/// executor, so calling it from a core keeps the caller on the core.
func hopThroughKernel(_ core: isolated Core, times: Int) async throws -> Int32 {
    for _ in 0..<times { try await core.nop() }
    return Core.currentThreadID
}

@Suite("Core isolation", .timeLimit(.minutes(1)))
struct CoreIsolationTests {
    @Test("A non-Sendable object used across awaits stays on its core's thread")
    func staysOnCore() async throws {
        try await withRuntime(cores: 2) { runtime in
            for index in runtime.cores.indices {
                let (ok, cpuOK) = try await runtime.run(on: index) { core in
                    let counter = CoreLocalCounter()
                    var ok = core.isCurrent
                    for _ in 0..<100 {
                        try await core.nop()
                        counter.value += 1
                        ok = ok && Core.currentThreadID == counter.thread
                    }
                    try await core.sleep(for: .milliseconds(1))
                    ok = ok && Core.currentThreadID == counter.thread
                    // A nonisolated helper and a structured child keep the core too.
                    let helperThread = try await hopThroughKernel(core, times: 10)
                    ok = ok && helperThread == counter.thread
                    async let child: Int32 = { () async -> Int32 in
                        await Task.yield()
                        return Core.currentThreadID
                    }()
                    let childThread = await child
                    ok = ok && childThread == counter.thread
                    return (ok && counter.value == 100, core.cpu.map { $0 == Core.currentCPU } ?? true)
                }
                #expect(ok)
                #expect(cpuOK)
            }
        }
    }

    @Test("Cores run on distinct pinned threads and every core runs work")
    func everyCore() async throws {
        try await withRuntime(cores: 2) { runtime in
            let threads = try await runtime.runOnEveryCore { core in
                (core.index, Core.currentThreadID, core.isCurrent)
            }
            #expect(threads.map(\.0) == [0, 1])
            #expect(Set(threads.map(\.1)).count == 2)
            #expect(threads.allSatisfy { $0.2 })
        }
    }

    @Test("Work submitted after shutdown gets a typed error")
    func afterShutdown() async throws {
        let runtime = try Runtime(configuration: .defaults { $0.coreCount = 1 })
        await runtime.stop()
        let error = await caught { _ = try await runtime.run(on: 0) { core in core.index } }
        #expect((error as? RuntimeError)?.isShutDown == true)
        let missing = await caught { _ = try await runtime.run(on: 7) { core in core.index } }
        #expect(missing is RuntimeError)
    }

    @Test("A storm of cross-thread enqueues loses no wake-up")
    func wakeupStorm() async throws {
        try await withRuntime(cores: 1) { runtime in
            let senders = 16
            let rounds = 500
            let total = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<senders {
                    // Plain tasks on the global pool: every run(on:) is an enqueue from another
                    // thread onto the core, which is often parked in between.
                    group.addTask {
                        var sum = 0
                        for _ in 0..<rounds {
                            sum += try await runtime.run(on: 0) { _ in 1 }
                        }
                        return sum
                    }
                }
                return try await group.reduce(0, +)
            }
            #expect(total == senders * rounds)
            let statistics = try await runtime.run(on: 0) { core in core.statistics }
            #expect(statistics.remoteJobs >= senders * rounds)
            #expect(statistics.parks > 0)
        }
    }
}
