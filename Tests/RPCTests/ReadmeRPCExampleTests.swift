import NetPool
import NetRPC
import NetRuntime
import NetTCP
import NetTestSupport
import Testing

// The README's service, word for word.
enum Echo {                                        // shared by client and server
    static let echo = RPCMethod<String, String>(id: 1, name: "Echo.echo")
}
struct EchoService: RPCService {
    func register(into handlers: inout RPCHandlers) {
        handlers.register(Echo.echo) { text, context in text }   // runs on the connection's core
        // a handler that never waits can run in the read loop, with no task: handlers.registerInline(...)
    }
}

@Suite("README RPC example", .timeLimit(.minutes(1)))
struct ReadmeRPCExampleTests {
    @Test("The README's service is defined, served and called")
    func readme() async throws {
        try await withRuntime(cores: 2) { runtime in
            let server = RPCServer(services: [EchoService()])
            let group = try TCPListenerGroup.bind(SocketAddress(host: "127.0.0.1", port: 0)!, cores: runtime.cores.count)
            for core in runtime.cores { try runtime.spawn(on: core.index) { core in try await server.serve(try group.listener(on: core)) } }

            let client = RPCClient(dialer: TCPDialer(), cores: runtime.cores)
            let reply = try await client.callFromAnywhere(Echo.echo, "hi", to: .socket(group.address))
            #expect(reply == "hi")
            server.beginDrain()
            await server.drained()
        }
    }
}
