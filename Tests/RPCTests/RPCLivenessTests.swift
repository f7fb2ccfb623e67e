import NetRPC
import NetRuntime
import NetTCP
import NetTransport
import NetTestSupport
import Testing

@Suite("RPC liveness and drain", .timeLimit(.minutes(1)))
struct RPCLivenessTests {
    @Test("Keepalive fails every call pending on a peer that stops answering")
    func keepalive() async throws {
        try await withRuntime { runtime in
            let group = try TCPListenerGroup.bind(SocketAddress(host: "127.0.0.1", port: 0)!, cores: 1)
            let errors = try await runtime.run(on: 0) { core in
                // The peer accepts and then never reads nor answers: it is silent.
                let listener = try group.listener(on: core)
                let transport = try await TCPDialer().dial(group.address, on: core)
                let silent = try await listener.accept()
                let rpc = try RPCConnection(transport, configuration: .defaults {
                    $0.keepaliveInterval = .milliseconds(50)
                    $0.keepaliveAllowedMisses = 2
                })
                var calls: [Task<RPCError?, Never>] = []
                for _ in 0..<3 {
                    calls.append(Task { _ = core; return await caught { _ = try await rpc.call(TestAPI.echo, "anyone?") } as? RPCError })
                }
                var codes: [RPCError.Code?] = []
                for call in calls { codes.append(await call.value?.code) }
                await silent.close()
                await listener.close()
                return codes
            }
            #expect(errors == [.connectionLost, .connectionLost, .connectionLost])
        }
    }

    @Test("Stopping the runtime while a call waits for its response ends the call with connectionLost, and the stop does not hang")
    func stopWhileACallWaits() async throws {
        let probe = Probe()
        try await TestTransport.tcp.withServer(probe: probe) { runtime, address in
            let call = try runtime.spawn(on: 0) { core -> RPCError.Code? in
                let rpc = try await TestTransport.tcp.connect(address, on: core)
                _ = try await rpc.call(TestAPI.echo, "warm")
                let error = await caught { _ = try await rpc.call(TestAPI.hold, 31_000) }  // never opened: ended by the stop
                return (error as? RPCError)?.code
            }
            await probe.until { $0.started.contains(31_000) }
            await runtime.stop()
            #expect(try await call.value == .connectionLost)
        }
    }

    @Test("Go-away drain: calls in flight finish, new calls are refused with unavailable, the server ends")
    func drain() async throws {
        let probe = Probe()
        try await withRuntime { runtime in
            let server = RPCServer(services: [TestService(probe: probe)])
            let address = try startServer(runtime, server: server)
            let (first, drainingTask) = try await runtime.run(on: 0) { core in
                let rpc = try RPCConnection(try await TCPDialer().dial(address, on: core))
                _ = try await rpc.call(TestAPI.echo, "warm")
                let inFlight = Task { _ = core; return try await rpc.call(TestAPI.hold, 200) }
                await probe.until { !$0.started.isEmpty }
                server.beginDrain()
                while !rpc.isGoingAway { await Task.yield() }  // the go-away frame arrives on this core
                let refused = await caught { _ = try await rpc.call(TestAPI.echo, "too late") } as? RPCError
                #expect(refused?.code == .unavailable)
                #expect(!rpc.isUsable)
                probe.open(200)  // the call in flight finishes after the go-away
                return (try await inFlight.value, Task { await server.drained() })
            }
            #expect(first == 200)
            await drainingTask.value
            #expect(server.connectionCount == 0)
            // The listener is closed: nobody accepts new connections.
            let dial = try await runtime.run(on: 0) { core in
                await caught { _ = try await TCPDialer().dial(address, on: core) }
            }
            #expect(dial != nil)
        }
    }
}
