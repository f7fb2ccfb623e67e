import NetRuntime
import NetTCP
import NetTransport
import NetTestSupport
import Testing

@Suite("README example", .timeLimit(.minutes(1)))
struct ReadmeExampleTests {
    @Test("The README's TCP echo compiles and echoes")
    func readmeEcho() async throws {
        let reply = try await withRuntime(cores: 2) { runtime in
            let group = try TCPListenerGroup.bind(SocketAddress(host: "127.0.0.1", port: 0)!, cores: runtime.cores.count)
            for core in runtime.cores {
                try runtime.spawn(on: core.index) { core in            // one accept loop per core
                    let listener = try group.listener(on: core)
                    while true {
                        let connection = try await listener.accept()   // lives on this core
                        Task { _ = core; while true { try await connection.send(try await connection.recv()) } }
                    }
                }
            }
            return try await runtime.run(on: 0) { core in
                let client = try await TCPDialer().dial(group.address, on: core)
                try await client.send(Message("hello"))
                let reply = String(try await client.recv())
                await client.close()
                return reply
            }
        }
        #expect(reply == "hello")
    }
}
