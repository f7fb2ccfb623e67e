import NetPool
import NetRPC
import NetRuntime
import NetTCP
import NetTransport
import NetTestSupport
import Testing

@Suite("RPC client through the connection manager", .timeLimit(.minutes(1)))
struct RPCClientTests {
    /// Serves TestService on `address` (port 0 picks one) until drained.
    static func serve(_ runtime: Runtime, on address: SocketAddress) throws -> (RPCServer, SocketAddress) {
        let server = RPCServer(services: [TestService(probe: Probe())])
        let group = try TCPListenerGroup.bind(address, cores: runtime.cores.count)
        for core in runtime.cores {
            _ = try runtime.spawn(on: core.index) { core in try await server.serve(try group.listener(on: core)) }
        }
        return (server, group.address)
    }

    @Test("A server goes away and comes back: calls before succeed, during fail with a typed error, after succeed again")
    func downThenUp() async throws {
        try await withRuntime { runtime in
            let (first, address) = try Self.serve(runtime, on: SocketAddress(host: "127.0.0.1", port: 0)!)
            var backoff = Backoff()
            backoff.base = .milliseconds(5)
            backoff.maximumAttempts = 2
            backoff.failFastPeriod = .zero  // the first call after the restart dials at once
            let client = RPCClient(dialer: TCPDialer(), cores: runtime.cores, backoff: backoff)
            let peer = PeerAddress.socket(address)

            let before = try await runtime.run(on: 0) { _ in try await client.call(TestAPI.echo, "before", to: peer) }
            #expect(before == "before")

            first.beginDrain()
            await first.drained()
            let during = try await runtime.run(on: 0) { _ in
                var codes: [RPCError.Code] = []
                for _ in 0..<3 {
                    do { _ = try await client.call(TestAPI.echo, "during", to: peer) } catch { codes.append((error as? RPCError)?.code ?? .unknown) }
                }
                return codes
            }
            #expect(during.count == 3)
            #expect(during.allSatisfy { $0 == .unavailable || $0 == .connectionLost })

            let (second, _) = try Self.serve(runtime, on: address)  // the same port again
            let after = try await runtime.run(on: 0) { _ in try await client.call(TestAPI.echo, "after", to: peer) }
            #expect(after == "after")
            second.beginDrain()
            await second.drained()
        }
    }

    @Test("A go-away while calls are in flight on a pooled connection fails none of them: the pool drops the connection and closes it once they end")
    func goAwayWithCallsInFlight() async throws {
        try await withRuntime { runtime in
            let probe = Probe()
            let server = RPCServer(services: [TestService(probe: probe)])
            let address = try startServer(runtime, server: server)
            let client = RPCClient(dialer: TCPDialer(), cores: runtime.cores)
            let peer = PeerAddress.socket(address)
            let (results, closedAfter) = try await runtime.run(on: 0) { core in
                let calls = try (0..<2).map { _ in try core.spawn { try await client.call(TestAPI.hold, 1, to: peer) } }
                await probe.until { $0.started.count == 2 }
                let connection = try #require(try client.manager(on: core).pool.connection(for: peer))
                server.beginDrain()
                // Calls on the connection until one is refused: the server's go-away comes before
                // its refusals, so the connection has heard it by then.
                while (try? await connection.call(TestAPI.echo, "probe")) != nil {}
                #expect(connection.isGoingAway)
                // Gone away: the pool evicts the connection when it meets it.
                #expect(try client.manager(on: core).pool.connection(for: peer) == nil)
                // Let the eviction's close task run (an eager close would fail the calls here).
                for _ in 0..<3 { try await core.yieldUntilTurnEnd() }
                probe.open(1)
                var results: [Int] = []
                for call in calls { results.append(try await call.value) }
                for _ in 0..<3 { try await core.yieldUntilTurnEnd() }  // the close once idle
                return (results, !connection.isUsable)
            }
            #expect(results == [1, 1])
            #expect(closedAfter)
            await server.drained()
        }
    }

    @Test("A task that is not on a core calls through the Sendable handle (it hops to a core and back)")
    func fromAnywhere() async throws {
        try await withRuntime(cores: 2) { runtime in
            let (server, address) = try Self.serve(runtime, on: SocketAddress(host: "127.0.0.1", port: 0)!)
            let client = RPCClient(dialer: TCPDialer(), cores: runtime.cores)
            var replies: [String] = []
            for i in 0..<4 {
                replies.append(try await client.callFromAnywhere(TestAPI.echo, "off-core \(i)", to: .socket(address)))
            }
            #expect(replies == (0..<4).map { "off-core \($0)" })
            server.beginDrain()
            await server.drained()
        }
    }
}
