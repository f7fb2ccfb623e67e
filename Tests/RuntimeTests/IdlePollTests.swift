#if canImport(Glibc)
import Glibc
#endif
@testable import NetRuntime
import NetTestSupport
import Testing

/// Cores that poll while idle (`Runtime.Configuration.idlePollTime`) instead of parking at once.
/// The long poll times make each path certain: a poll that ignored a timer, a job or a
/// completion would hold its core for the whole time and fail the test's time limit.
@Suite("Idle polling", .timeLimit(.minutes(1)))
struct IdlePollTests {
    @Test("Polling cores carry a ping-pong between them, taking up replies they polled for")
    func pingPongBetweenPollingCores() async throws {
        try await withRuntime(cores: 2, configure: { $0.idlePollTime = .seconds(30) }) { runtime in
            let (listener, address) = try Socket.listenTCP(on: SocketAddress(host: "127.0.0.1", port: 0)!)
            defer { Socket.closeNow(listener) }
            async let echoed: Int = runtime.run(on: 0) { core in
                let (fd, _) = try await core.accept(listener)
                try Socket.setNoDelay(fd)
                let buffer = RawBuffer(count: 64)
                var echoed = 0
                while true {
                    let n = try await core.recv(fd, into: buffer.bytes)
                    if n == 0 { break }
                    try await core.sendAll(fd, UnsafeRawBufferPointer(rebasing: buffer.readable[..<n]))
                    echoed += n
                }
                try await core.close(fd)
                return echoed
            }
            let rounds = 200
            let (matched, foundByPolling, polls) = try await runtime.run(on: 1) { core in
                let fd = try await core.connectTCP(to: address, timeout: .seconds(5))
                try Socket.setNoDelay(fd)
                let out = RawBuffer(count: 8)
                let reply = RawBuffer(count: 8)
                let before = core.statistics
                var matched = 0
                for round in 0..<rounds {
                    out.bytes.storeBytes(of: UInt64(round), as: UInt64.self)
                    try await core.sendAll(fd, out.readable)
                    var got = 0
                    while got < 8 {
                        let n = try await core.recv(fd, into: UnsafeMutableRawBufferPointer(rebasing: reply.bytes[got...]))
                        if n == 0 { break }
                        got += n
                    }
                    if got == 8 && reply.bytes.load(as: UInt64.self) == UInt64(round) { matched += 1 }
                }
                try await core.close(fd)
                let after = core.statistics
                return (matched, after.idlePollsEndedByWork - before.idlePollsEndedByWork, after.idlePolls - before.idlePolls)
            }
            #expect(matched == rounds)
            #expect(try await echoed == rounds * 8)
            // Each reply finds the client idle: it polled for it rather than parking.
            #expect(polls > 0)
            #expect(foundByPolling > 0)
        }
    }

    @Test("A deadline due before the poll time ends still ends its operation on time")
    func deadlineEndsIdlePoll() async throws {
        try await withRuntime(cores: 1, configure: { $0.idlePollTime = .seconds(30) }) { runtime in
            let start = ContinuousClock.now
            let timedOut = try await runtime.run(on: 0) { core in
                let (a, b) = try Socket.pair()
                defer { Socket.closeNow(a); Socket.closeNow(b) }
                let buffer = RawBuffer(count: 8)
                var timedOut = 0
                for _ in 0..<5 {  // nothing is ever sent: each receive ends by its deadline
                    do {
                        _ = try await core.recv(a, into: buffer.bytes, deadline: .now + .milliseconds(10))
                    } catch let error as IOError where error.isTimeout {
                        timedOut += 1
                    }
                }
                return timedOut
            }
            #expect(timedOut == 5)
            // Polling past the deadline would take 30 s per receive.
            #expect(ContinuousClock.now - start < .seconds(20))
        }
    }

    @Test("Jobs from other threads reach a polling core without waking it")
    func remoteJobsReachPollingCore() async throws {
        try await withRuntime(cores: 1, configure: { $0.idlePollTime = .seconds(30) }) { runtime in
            let before = try await runtime.run(on: 0) { core in core.statistics }
            var sum = 0
            for value in 0..<100 {
                sum += try await runtime.run(on: 0) { _ in value }
            }
            let after = try await runtime.run(on: 0) { core in core.statistics }
            #expect(sum == 4950)
            #expect(after.idlePollsEndedByWork > before.idlePollsEndedByWork)
            // Every job came while the core polled: it never parked.
            #expect(after.parks == before.parks)
        }
    }

    @Test("Once its poll time has passed, an idle core parks")
    func idleCoreParksAfterPollTime() async throws {
        try await withRuntime(cores: 1, configure: { $0.idlePollTime = .microseconds(100) }) { runtime in
            // Parked once its 100 µs poll ran out with nothing to do, having polled first.
            let polls = try await Self.pollsUntilParked(runtime)
            #expect(polls >= 1)
        }
    }

    @Test("By default, and with a negative poll time, an idle core parks at once", arguments: [nil, Duration.milliseconds(-5)])
    func defaultParksAtOnce(pollTime: Duration?) async throws {
        try await withRuntime(cores: 1, configure: { if let pollTime { $0.idlePollTime = pollTime } }) { runtime in
            let polls = try await Self.pollsUntilParked(runtime)
            #expect(polls == 0)
        }
    }

    /// Waits, off the core, until core 0 parks (its `parked` flag, read without a hop that would
    /// wake it), and returns the idle polls it made meanwhile. A core that never parked would keep
    /// this waiting until the suite's time limit.
    private static func pollsUntilParked(_ runtime: Runtime) async throws -> Int {
        let before = try await runtime.run(on: 0) { core in core.statistics.idlePolls }
        while !runtime.cores[0].executor.parked.load(ordering: .sequentiallyConsistent) {
            await Task.yield()
        }
        let after = try await runtime.run(on: 0) { core in core.statistics.idlePolls }
        return after - before
    }
}
