import NetRuntime
import NetTestSupport
import Testing

@Suite("Core timers", .timeLimit(.minutes(1)))
struct TimerTests {
    @Test("Sleeps end in deadline order, never before their deadline")
    func order() async throws {
        try await withRuntime { runtime in
            let (order, early) = try await runtime.run(on: 0) { core in
                let start = Deadline.now
                let deadlines = [30, 10, 20, 0].map { start + .milliseconds($0) }
                return try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                    for deadline in deadlines {
                        group.addTask {
                            try await core.sleep(until: deadline)
                            return (Int((deadline.nanoseconds - start.nanoseconds) / 1_000_000), Deadline.now < deadline)
                        }
                    }
                    var order: [Int] = []
                    var early = false
                    for try await (ms, wasEarly) in group {
                        order.append(ms)
                        early = early || wasEarly
                    }
                    return (order, early)
                }
            }
            #expect(order == [0, 10, 20, 30])
            #expect(!early)
        }
    }

    @Test("A recv with a deadline fails with ETIMEDOUT when nothing arrives")
    func recvDeadline() async throws {
        try await withRuntime { runtime in
            let (a, b) = try Socket.pair()
            defer { Socket.closeNow(a); Socket.closeNow(b) }
            let error = try await runtime.run(on: 0) { core in
                let buffer = RawBuffer(count: 8)
                return await caught {
                    _ = try await core.recv(a, into: buffer.bytes, deadline: .now + .milliseconds(20))
                }
            }
            #expect((error as? IOError)?.isTimeout == true)
        }
    }

    @Test("Far timers (the coarse clock's path) end no earlier than their deadline, and a near one beside them on time")
    func farTimers() async throws {
        try await withRuntime { runtime in
            let (a, b) = try Socket.pair()
            let (c, d) = try Socket.pair()
            defer { for fd in [a, b, c, d] { Socket.closeNow(fd) } }
            let (timedOut, early, farError) = try await runtime.run(on: 0) { core in
                // Receives that nothing answers, so each ends by its deadline. 300 ms is over twice
                // the coarse clock's lag: the core parks by the coarse clock, wakes a tick or two
                // early, then parks again by the precise one. The 1-hour receive keeps a far timer
                // in the queue throughout; the 5 ms one must not wait for it.
                let far = try core.spawn {
                    let buffer = RawBuffer(count: 8)
                    return await caught { _ = try await core.recv(c, into: buffer.bytes, deadline: .now + .seconds(3600)) }
                }
                let buffer = RawBuffer(count: 8)
                var early = false
                var timedOut = 0
                for ms in [300, 5, 250] {
                    let deadline = Deadline.now + .milliseconds(Int64(ms))
                    do {
                        _ = try await core.recv(a, into: buffer.bytes, deadline: deadline)
                    } catch let error as IOError where error.isTimeout {
                        timedOut += 1
                    }
                    early = early || Deadline.now < deadline
                }
                far.cancel()
                return (timedOut, early, await far.value)
            }
            #expect(timedOut == 3)
            #expect(!early)
            #expect(farError is CancellationError)
        }
    }

    @Test("The coarse clock is never ahead of the precise one")
    func coarseClock() {
        #expect(Deadline.coarseLag != nil)  // Linux serves CLOCK_MONOTONIC_COARSE
        for _ in 0..<1_000 {
            let coarse = Deadline.coarseNow
            #expect(coarse <= Deadline.now)
        }
    }

    @Test("Deadline arithmetic saturates")
    func deadlineArithmetic() {
        #expect(Deadline(nanoseconds: .max - 5) + .seconds(1) == .distantFuture)
        #expect(Deadline(nanoseconds: 5) + .nanoseconds(-10) == Deadline(nanoseconds: 0))
        #expect(Deadline(nanoseconds: 1_000) + .microseconds(1) == Deadline(nanoseconds: 2_000))
    }
}
