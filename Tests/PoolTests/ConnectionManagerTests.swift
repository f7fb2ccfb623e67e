#if canImport(Glibc)
import Glibc
#endif
public import NetPool
import NetRuntime
public import NetTCP
import NetTransport
import Testing
import NetTestSupport

extension TCPTransport: PooledConnection {
    public var isUsable: Bool { isOpen }
}

@Suite("Connection manager", .timeLimit(.minutes(1)))
struct ConnectionManagerTests {
    @Test("100 concurrent requests for one address make exactly one dial")
    func singleFlight() async throws {
        try await withRuntime { runtime in
            let (dials, distinct) = try await runtime.run(on: 0) { core in
                // The dial waits at a gate the test opens once every caller has asked.
                let gate = CoreWaitQueue(core: core)
                var open = false
                let manager = ConnectionManager<FakeConnection>(core: core) { _, _ in
                    while !open { try await gate.wait() }
                    return FakeConnection("only")
                }
                var tasks: [Task<String, any Error>] = []
                for _ in 0..<100 {
                    tasks.append(Task { _ = core; return try await manager.connection(to: peerA).name })
                }
                // The callers run on this core in turn: one yield lets each reach the manager.
                await Task.yield()
                open = true
                gate.signalAll()
                var names = Set<String>()
                for task in tasks { names.insert(try await task.value) }
                return (manager.dialCount, names.count)
            }
            #expect(dials == 1)
            #expect(distinct == 1)
        }
    }

    @Test("A caller that gives up (its deadline passes, or it is cancelled) does not end the shared dial: the others get its connection, and the peer is not marked failing")
    func callerGivesUp() async throws {
        try await withRuntime { runtime in
            let (timedOut, cancelled, waiterGot, laterGot, dials) = try await runtime.run(on: 0) { core in
                let gate = CoreWaitQueue(core: core)
                var open = false
                let manager = ConnectionManager<FakeConnection>(core: core) { _, _ in
                    while !open { try await gate.wait() }
                    return FakeConnection("shared")
                }
                // The first caller starts the dial and gives up at its deadline.
                let first = await caught { _ = try await manager.connection(to: peerA, deadline: .now + .milliseconds(20)) }
                // A second gives up by cancellation, a third waits.
                let quitter = try core.spawn { try await manager.connection(to: peerA).name }
                let waiter = try core.spawn { try await manager.connection(to: peerA).name }
                await Task.yield()
                quitter.cancel()
                let quit = await caught { _ = try await quitter.value }
                open = true
                gate.signalAll()
                let got = try await waiter.value
                let later = try await manager.connection(to: peerA).name  // pooled: no new dial
                return ((first as? PoolError)?.code == .timedOut, quit is CancellationError, got, later, manager.dialCount)
            }
            #expect(timedOut)
            #expect(cancelled)
            #expect(waiterGot == "shared")
            #expect(laterGot == "shared")
            #expect(dials == 1)
        }
    }

    @Test("A refusing peer: every attempt on the backoff schedule, then unavailable, then fail fast until the probe time")
    func refusedThenFailFast() async throws {
        try await withRuntime { runtime in
            // A port bound but not listening: connects are refused, and no other test can take
            // the port meanwhile (as it could if we closed it).
            let fd = try Socket.makeTCP(family: AF_INET)
            defer { Socket.closeNow(fd) }
            var any = SocketAddress(host: "127.0.0.1", port: 0)!.storage
            let bound = withUnsafePointer(to: &any) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            #expect(bound == 0)
            let address = try Socket.localAddress(of: fd)
            let (first, dialsAfterFirst, second, dialsAfterSecond, third, dialsAfterThird) = try await runtime.run(on: 0) { core in
                let clock = TestClock()
                var backoff = Backoff()
                backoff.base = .milliseconds(2)
                backoff.maximumAttempts = 3
                backoff.failFastPeriod = .seconds(5)
                let manager = ConnectionManager<TCPTransport>(core: core, backoff: backoff, clock: clock) { address, core in
                    try await TCPDialer().dial(address, on: core)
                }
                let first = await caught { _ = try await manager.connection(to: .socket(address)) } as? PoolError
                let dialsAfterFirst = manager.dialCount
                let second = await caught { _ = try await manager.connection(to: .socket(address)) } as? PoolError
                let dialsAfterSecond = manager.dialCount
                clock.advance(.seconds(6))  // past the fail-fast window: the next call probes
                let third = await caught { _ = try await manager.connection(to: .socket(address)) } as? PoolError
                return (first?.code, dialsAfterFirst, second?.code, dialsAfterSecond, third?.code, manager.dialCount)
            }
            #expect(first == .unavailable && dialsAfterFirst == 3)
            #expect(second == .unavailable && dialsAfterSecond == 3)  // failed fast: no dial
            #expect(third == .unavailable && dialsAfterThird == 6)
        }
    }

    @Test("A name that does not resolve is a typed error")
    func unresolvable() async throws {
        try await withRuntime { runtime in
            let code = try await runtime.run(on: 0) { core in
                let manager = ConnectionManager<TCPTransport>(core: core) { address, core in try await TCPDialer().dial(address, on: core) }
                return (await caught { _ = try await manager.connection(to: .host("no-such-host.invalid", port: 80)) } as? PoolError)?.code
            }
            #expect(code == .unresolvable)
        }
    }

    @Test("A peer that never answers a connect fails by the connect timeout, never hangs")
    func neverAnswers() async throws {
        try await withRuntime { runtime in
            // Backlog 0 with one connection left unaccepted: later SYNs are dropped.
            let (listener, address) = try Socket.listenTCP(on: SocketAddress(host: "127.0.0.1", port: 0)!, backlog: 0)
            defer { Socket.closeNow(listener) }
            let code = try await runtime.run(on: 0) { core in
                var filler: [Int32] = []
                for _ in 0..<4 {
                    guard let fd = try? await core.connectTCP(to: address, timeout: .milliseconds(200)) else { break }
                    filler.append(fd)
                }
                var backoff = Backoff()
                backoff.maximumAttempts = 2
                backoff.base = .milliseconds(1)
                let dialer = TCPDialer(configuration: .defaults { $0.connectTimeout = .milliseconds(200) })
                let manager = ConnectionManager<TCPTransport>(core: core, backoff: backoff) { address, core in
                    try await dialer.dial(address, on: core)
                }
                let error = await caught { _ = try await manager.connection(to: .socket(address)) } as? PoolError
                for fd in filler { try await core.close(fd) }
                return error?.code
            }
            #expect(code == .unavailable)
        }
    }

    @Test("A peer that accepts and resets: the dead connection is not handed out again")
    func acceptsAndResets() async throws {
        try await withRuntime { runtime in
            let group = try TCPListenerGroup.bind(SocketAddress(host: "127.0.0.1", port: 0)!, cores: 1)
            let (reused, dials) = try await runtime.run(on: 0) { core in
                let listener = try group.listener(on: core)
                let manager = ConnectionManager<TCPTransport>(core: core) { address, core in try await TCPDialer().dial(address, on: core) }
                let first = try await manager.connection(to: .socket(group.address))
                let server = try await listener.accept()
                await server.close()
                _ = await caught { _ = try await first.recv() }  // sees the close: no longer usable
                let second = try await manager.connection(to: .socket(group.address))
                let accepted = try await listener.accept()
                await accepted.close()
                await second.close()
                await listener.close()
                return (first === second, manager.dialCount)
            }
            #expect(!reused)
            #expect(dials == 2)
        }
    }
}

