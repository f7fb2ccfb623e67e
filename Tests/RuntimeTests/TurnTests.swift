import NetRuntime
import NetTestSupport
import Testing

/// Passes the turn between two tasks of one core: each resumes the other, then waits.
final class HandOff {
    var handles: [CoreWakeHandle?] = [nil, nil]
    var count = 0
}

@Suite("What a core runs in one turn", .timeLimit(.minutes(1)))
struct TurnTests {
    @Test("A task resumed by another task of its core runs in the same turn, not the next")
    func handOffInOneTurn() async throws {
        let (count, turns) = try await handOffs(handOffJobsPerTurn: nil)
        #expect(count >= 1_000)
        // One turn per hand-off when a resumed task waits for the next turn.
        #expect(turns < 100)
    }

    @Test("With handOffJobsPerTurn 0, a resumed task waits for the next turn")
    func handOffJobsPerTurnIsConfigurable() async throws {
        let (count, turns) = try await handOffs(handOffJobsPerTurn: 0)
        #expect(count >= 1_000)
        #expect(turns >= 1_000)
    }

    /// Two tasks of one core hand the turn to each other 1,000 times; returns the hand-offs and
    /// the core's turns. `nil` keeps the runtime's default bound.
    private func handOffs(handOffJobsPerTurn: Int?) async throws -> (count: Int, turns: Int) {
        try await withRuntime(cores: 1, configure: { if let handOffJobsPerTurn { $0.handOffJobsPerTurn = handOffJobsPerTurn } }) { runtime in
            try await runtime.run(on: 0) { core in
                let handOff = HandOff()
                let rounds = 1_000
                func player(_ me: Int) async {
                    while handOff.count < rounds {
                        handOff.count += 1
                        if let other = handOff.handles[1 - me] { core.resume(other) }
                        _ = try? await suspendOnCore(core) { handOff.handles[me] = $0 }
                        handOff.handles[me] = nil
                    }
                    if let other = handOff.handles[1 - me] { core.resume(other) }
                }
                let before = core.statistics.turns
                let a = try core.spawn { await player(0) }
                let b = try core.spawn { await player(1) }
                await a.value
                await b.value
                return (handOff.count, core.statistics.turns - before)
            }
        }
    }

    @Test("An actor-isolated task's await of the ring costs one turn, hop to the actor included")
    func isolatedAwaitInOneTurn() async throws {
        try await withRuntime(cores: 1) { runtime in
            let turns = try await runtime.run(on: 0) { core in
                let before = core.statistics.turns
                for _ in 0..<500 { try await core.nop() }
                return core.statistics.turns - before
            }
            // Swift resumes the continuation on the task executor, then hops to the actor:
            // run a turn later, that hop doubled the turns.
            #expect(turns < 600)
        }
    }

    @Test("A task that yields in a loop does not keep the core from reaping its ring")
    func yieldingTaskDoesNotStarveIO() async throws {
        try await withRuntime(cores: 1) { runtime in
            let done = try await runtime.run(on: 0) { core in
                let counter = CoreLocalCounter()
                let spinner = try core.spawn {
                    while counter.value == 0 { await Task.yield() }
                }
                try await core.nop()  // completes only if the core still enters the kernel
                counter.value = 1
                await spinner.value
                return true
            }
            #expect(done)
        }
    }

    @Test("Deadlines of operations that ended early do not pile up in the core's timers")
    func endedDeadlinesAreDropped() async throws {
        try await withRuntime(cores: 1) { runtime in
            let entries = try await runtime.run(on: 0) { core in
                // Each wait ends at once (resumed before it suspends) with an hour to spare.
                for _ in 0..<5_000 {
                    _ = try await suspendOnCore(core, deadline: .now + .seconds(3_600)) { core.resume($0) }
                }
                try await core.nop()  // a turn after the last one
                return core.statistics.timerEntries
            }
            #expect(entries < 2_000)
        }
    }
}
