import NetRuntime
import NetTestSupport
import Testing

@Suite("Graceful shutdown", .timeLimit(.minutes(1)))
struct GracefulShutdownTests {
    @Test("Work in progress finishes within the grace period; new work is refused meanwhile")
    func finishesInGrace() async throws {
        let runtime = try Runtime(configuration: .defaults {
            $0.coreCount = 1
            $0.shutdownGracePeriod = .seconds(30)
        })
        let gate = CoreChannel<Int>(capacity: 1)
        let worker = try runtime.spawn(on: 0) { core in
            // Finishes only when let through: a sleep on the core, then the gate.
            try await core.sleep(for: .milliseconds(1))
            return try await gate.receive() ?? -1
        }
        while runtime.workInProgress == 0 { await Task.yield() }
        runtime.beginGracefulShutdown()
        let refused = await caught { _ = try await runtime.run(on: 0) { core in core.index } }
        #expect((refused as? RuntimeError)?.isShutDown == true)
        #expect(runtime.workInProgress == 1)
        try await gate.send(7)
        #expect(try await worker.value == 7)
        await runtime.run()
        #expect(runtime.workInProgress == 0)
    }

    @Test("Work still running at the end of the grace period is cancelled")
    func cancelsAfterGrace() async throws {
        let runtime = try Runtime(configuration: .defaults {
            $0.coreCount = 1
            $0.shutdownGracePeriod = .milliseconds(20)
        })
        let sleeper = try runtime.spawn(on: 0) { core in
            await caught { try await core.sleep(for: .seconds(3600)) }
        }
        while runtime.workInProgress == 0 { await Task.yield() }
        runtime.beginGracefulShutdown()
        await runtime.run()
        #expect(try await sleeper.value is CancellationError)
    }
}
