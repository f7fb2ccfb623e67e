import NetPool
import NetRuntime
import NetTestSupport
import Testing

@Suite("Connection pool", .timeLimit(.minutes(1)))
struct ConnectionPoolTests {
    @Test("Idle TTL and maximum lifetime expire connections; unusable ones are never handed out")
    func expiry() async throws {
        try await withRuntime { runtime in
            let results = try await runtime.run(on: 0) { core in
                let clock = TestClock()
                var configuration = ConnectionPool<PeerAddress, FakeConnection>.Configuration()
                configuration.idleTimeout = .seconds(10)
                configuration.maximumLifetime = .seconds(25)
                let pool = ConnectionPool<PeerAddress, FakeConnection>(configuration: configuration, clock: clock)
                let a = FakeConnection("a")
                pool.add(a, for: peerA)
                clock.advance(.seconds(9))
                let usedAt9 = pool.connection(for: peerA) === a          // used: idle timer restarts
                clock.advance(.seconds(9))
                let usedAt18 = pool.connection(for: peerA) === a
                clock.advance(.seconds(8))                                 // 26 s old: past its lifetime
                let afterLifetime = pool.connection(for: peerA) == nil

                let b = FakeConnection("b")
                pool.add(b, for: peerB)
                clock.advance(.seconds(11))                                // idle too long
                let swept = pool.sweep()

                let c = FakeConnection("c")
                pool.add(c, for: peerC)
                c.isUsable = false                                         // failed, or a go-away
                let unusable = pool.connection(for: peerC) == nil
                await Task.yield()
                return (usedAt9, usedAt18, afterLifetime, swept, unusable, pool.count)
            }
            #expect(results.0 && results.1 && results.2)
            #expect(results.3 == 1)
            #expect(results.4)
            #expect(results.5 == 0)
        }
    }

    @Test("A connection with calls in flight is not idle, however long ago it was handed out; an evicted one is closed once its calls end, not at once")
    func workInFlight() async throws {
        try await withRuntime { runtime in
            let (busySwept, busyHandedOut, idleSwept, goAwayAskedGently, goAwayClosedEarly) = try await runtime.run(on: 0) { core in
                let clock = TestClock()
                var configuration = ConnectionPool<PeerAddress, FakeConnection>.Configuration()
                configuration.idleTimeout = .seconds(10)
                let pool = ConnectionPool<PeerAddress, FakeConnection>(configuration: configuration, clock: clock)
                let busy = FakeConnection("busy")
                pool.add(busy, for: peerA)
                busy.inFlight = 1                   // a long call
                clock.advance(.seconds(30))
                let busySwept = pool.sweep()
                let busyHandedOut = pool.connection(for: peerA) === busy
                busy.inFlight = 0
                clock.advance(.seconds(11))
                let idleSwept = pool.sweep()
                // A go-away while a call is in flight: evicted, but closed only when idle.
                let leaving = FakeConnection("leaving")
                pool.add(leaving, for: peerB)
                leaving.inFlight = 1
                leaving.isUsable = false
                _ = pool.connection(for: peerB)
                await Task.yield()
                await Task.yield()
                return (busySwept, busyHandedOut, idleSwept, leaving.closeWhenIdleAsked, leaving.closed)
            }
            #expect(busySwept == 0)
            #expect(busyHandedOut)
            #expect(idleSwept == 1)
            #expect(goAwayAskedGently)
            #expect(!goAwayClosedEarly)
        }
    }

    @Test("Limits per key and in total evict the least recently used; several per key go in turn")
    func limits() async throws {
        try await withRuntime { runtime in
            let names = try await runtime.run(on: 0) { core in
                let clock = TestClock()
                var configuration = ConnectionPool<PeerAddress, FakeConnection>.Configuration()
                configuration.maximumPerKey = 2
                configuration.maximumTotal = 3
                let pool = ConnectionPool<PeerAddress, FakeConnection>(configuration: configuration, clock: clock)
                let a1 = FakeConnection("a1"), a2 = FakeConnection("a2"), a3 = FakeConnection("a3")
                pool.add(a1, for: peerA); clock.advance(.seconds(1))
                pool.add(a2, for: peerA); clock.advance(.seconds(1))
                // In turn.
                let turns = (0..<4).compactMap { _ in pool.connection(for: peerA)?.name }
                clock.advance(.seconds(1))
                _ = pool.connection(for: peerA)   // a1 or a2 used last: the other is the LRU
                let lruOfA = turns.count % 2 == 0 ? "a2" : "a1"
                clock.advance(.seconds(1))
                pool.add(a3, for: peerA)          // over 2 per key: the LRU of A goes
                clock.advance(.seconds(1))
                let b = FakeConnection("b")
                pool.add(b, for: peerB)           // 3 in all
                clock.advance(.seconds(1))
                let c = FakeConnection("c")
                pool.add(c, for: peerC)           // over 3 in all: the global LRU goes
                await Task.yield()
                let evicted = [a1, a2, a3, b].filter(\.closed).map(\.name)
                return (turns, lruOfA, evicted, pool.count)
            }
            #expect(names.0 == ["a1", "a2", "a1", "a2"])
            #expect(names.2.count == 2)
            #expect(names.2.contains(names.1))
            #expect(names.3 == 3)
        }
    }

    @Test("The backoff schedule doubles up to its maximum, and full jitter stays within it")
    func backoff() {
        var backoff = Backoff()
        backoff.base = .milliseconds(100)
        backoff.maximum = .seconds(2)
        #expect((0..<7).map { backoff.ceiling(retry: $0) } == [100, 200, 400, 800, 1600, 2000, 2000].map { Duration.milliseconds($0) })
        var random = SeededGenerator(seed: 42)
        var delays: [Duration] = []
        for retry in 0..<1000 {
            let delay = backoff.delay(retry: retry % 8, using: &random)
            #expect(delay >= .zero && delay <= backoff.ceiling(retry: retry % 8))
            delays.append(delay)
        }
        // Full jitter: spread over the range, not bunched at its top.
        let low = delays.enumerated().filter { $0.element < backoff.ceiling(retry: $0.offset % 8) / 2 }.count
        #expect(low > 350 && low < 650)
        var again = SeededGenerator(seed: 42)
        #expect(backoff.delay(retry: 0, using: &again) == delays[0])
        #expect(backoff.failFast(after: 1) == backoff.failFastPeriod)
        #expect(backoff.failFast(after: 30) == backoff.maximum)
    }

    @Test("Backoff settings of any size or sign give delays in 0 ... maximum, never a trap")
    func backoffExtremes() {
        var random = SeededGenerator(seed: 7)
        var huge = Backoff()
        huge.base = .seconds(Int64.max)
        huge.maximum = .seconds(Int64.max)
        huge.failFastPeriod = .seconds(Int64.max)
        #expect(huge.ceiling(retry: 70) == .nanoseconds(Int64.max))
        #expect(huge.delay(retry: 3, using: &random) >= .zero)
        #expect(huge.failFast(after: 40) == .nanoseconds(Int64.max))
        var negative = Backoff()
        negative.base = .seconds(-1)
        negative.maximum = .seconds(-5)
        negative.failFastPeriod = .milliseconds(-1)
        #expect(negative.ceiling(retry: 2) == .zero)
        #expect(negative.delay(retry: 2, using: &random) == .zero)
        #expect(negative.failFast(after: 1) == .zero)
        #expect(Backoff().ceiling(retry: -3) == Backoff().base)
    }
}
