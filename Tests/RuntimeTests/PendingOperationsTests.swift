#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
import NetTestSupport
import Testing

@Suite("Many pending operations", .timeLimit(.minutes(1)))
struct PendingOperationsTests {
    @Test("10,000 recvs pending at once on a 256-entry ring all complete with their own data")
    func tenThousandPending() async throws {
        // 5,000 socket pairs with a recv on each end: 10,000 descriptors, under the usual
        // RLIMIT_NOFILE of 20,000 (raised to its hard limit in case it is lower).
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        let pairs = 5_000
        try await withRuntime(cores: 1, ringEntries: 256) { runtime in
            var sockets: [(Int32, Int32)] = []
            defer { for (a, b) in sockets { Socket.closeNow(a); Socket.closeNow(b) } }
            for _ in 0..<pairs { sockets.append(try Socket.pair()) }
            let fds = sockets.flatMap { [$0.0, $0.1] }
            let before = try await runtime.run(on: 0) { core in core.statistics.submissionQueueFull }

            let ended = Flag()
            let receivers = try runtime.spawn(on: 0) { core in
                defer { ended.set() }
                return try await withThrowingTaskGroup(of: Bool.self) { group in
                    for (i, fd) in fds.enumerated() {
                        group.addTask {
                            let buffer = RawBuffer(count: 4)
                            let n = try await core.recv(fd, into: buffer.bytes)
                            return n == 4 && buffer.prefix(4) == Self.tag(i)
                        }
                    }
                    // A for-await loop rather than `allSatisfy`, which is @concurrent and would
                    // leave the core.
                    var all = true
                    for try await ok in group { all = all && ok }
                    return all
                }
            }
            // Until every recv is pending, or the receivers have ended early (a recv failed:
            // its error is then the test's failure, where waiting on would spin for good).
            try await runtime.run(on: 0) { core in
                while core.statistics.pendingOperations < fds.count && !ended.isSet { await Task.yield() }
            }
            if ended.isSet {
                _ = try await receivers.value
                Issue.record("the receivers ended before every recv was pending")
                return
            }
            let queueFull = try await runtime.run(on: 0) { core in core.statistics.submissionQueueFull } - before
            // Only now, with every recv pending, does any data arrive: each end gets its own tag
            // from its peer.
            for (i, fd) in fds.enumerated() {
                let peer = i % 2 == 0 ? fds[i + 1] : fds[i - 1]
                _ = fd
                try writeAll(peer, Self.tag(i))
            }
            #expect(try await receivers.value)
            if !isEpoll {
                // More operations were started between two submissions than the ring holds.
                #expect(queueFull > 0)
            }
        }
    }

    static func tag(_ i: Int) -> [UInt8] {
        withUnsafeBytes(of: UInt32(i).littleEndian) { Array($0) }
    }
}

