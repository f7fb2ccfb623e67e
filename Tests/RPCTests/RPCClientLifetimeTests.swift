@testable import NetRPC
import NetPool
import NetRuntime
import NetTCP
import NetTestSupport
import Testing

@Suite("RPC client lifetime", .timeLimit(.minutes(1)))
struct RPCClientLifetimeTests {
    @Test("A released client leaves nothing behind: each core drops its manager and closes its connections")
    func releasedClientCloses() async throws {
        try await withRuntime { runtime in
            let server = RPCServer(services: [TestService(probe: Probe())])
            let address = try startServer(runtime, server: server)
            var client: RPCClient<TCPDialer>? = RPCClient(dialer: TCPDialer(), cores: runtime.cores)
            let reply = try await runtime.run(on: 0) { [client] _ in try await client!.call(TestAPI.echo, "x", to: .socket(address)) }
            #expect(reply == "x")
            #expect(server.connectionCount == 1)
            client = nil
            let managersLeft = try await runtime.run(on: 0) { core in
                // The server sees the connection end once the client's core has closed it.
                await server.waitForConnections(atMost: 0)
                return try core.local(ClientRegistry.self) { ClientRegistry() }.managers.count
            }
            #expect(managersLeft == 0)
            #expect(client == nil)
        }
    }
}
