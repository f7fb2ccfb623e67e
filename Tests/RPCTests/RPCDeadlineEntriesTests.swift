@testable import NetRPC
import NetRuntime
import NetTCP
import NetTestSupport
import Testing

@Suite("RPC server deadline entries", .timeLimit(.minutes(1)))
struct RPCDeadlineEntriesTests {
    @Test("Behind one long call with a far deadline, the deadline entries of thousands of quick calls are dropped, not kept until that deadline")
    func endedEntriesAreDropped() async throws {
        let probe = Probe()
        try await withRuntime(cores: 1) { runtime in
            let server = RPCServer(services: [TestService(probe: probe)])
            let address = try startServer(runtime, server: server)
            let (entries, running) = try await runtime.run(on: 0) { core in
                let rpc = try RPCConnection(try await TCPDialer().dial(address, on: core))
                // The long call: its deadline (5 minutes) stays at the top of the server's heap.
                let long = try core.spawn { try await rpc.call(TestAPI.hold, 1, options: .timeout(.seconds(300))) }
                await probe.until { $0.started == [1] }
                for i in 0..<3_000 {  // each with a later deadline, each ended at once
                    _ = try await rpc.call(TestAPI.echo, "\(i)", options: .timeout(.seconds(600)))
                }
                let connection = try ServerRegistry.on(core).connections[ObjectIdentifier(server)]?.values.first as? ServerConnection<TCPTransport>
                let entries = connection?.deadlineEntries ?? -1
                probe.open(1)
                let running = try await long.value
                await rpc.close()
                return (entries, running)
            }
            #expect(entries >= 1)
            #expect(entries <= 2 + ServerConnection<TCPTransport>.endedDeadlinesAllowed)
            #expect(running == 1)
        }
    }
}
