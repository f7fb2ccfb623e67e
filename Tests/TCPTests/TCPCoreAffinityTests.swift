import NetRuntime
@testable import NetTCP
import NetTransport
import Synchronization
import NetTestSupport
import Testing

/// A counter shared by the cores of one test.
final class SharedCounter: Sendable {
    let value = Atomic<Int>(0)
}

@Suite("TCP across cores", .timeLimit(.minutes(1)))
struct TCPCoreAffinityTests {
    /// Serves on one core until `total` connections were accepted across all cores: echoes one
    /// frame per connection and checks that every step ran on this core's thread.
    static func serve(core: isolated Core, group: TCPListenerGroup, accepted: SharedCounter, total: Int) async throws -> (Int, Bool) {
        let listener = try group.listener(on: core)
        let thread = Core.currentThreadID
        var handlers: [Task<Bool, Never>] = []
        while true {
            // The test cancels this task once every connection is accepted.
            guard let connection = try? await listener.accept() else { break }
            accepted.value.add(1, ordering: .relaxed)
            // A task that uses `core` inherits its isolation: it may use the core's connection.
            let handler = Task {
                _ = core
                guard let message = try? await connection.recv() else {
                    await connection.close()
                    return false
                }
                do {
                    var ok = Core.currentThreadID == thread
                    try await connection.send(message)
                    ok = ok && Core.currentThreadID == thread
                    _ = try? await connection.recv()  // until the client closes
                    ok = ok && Core.currentThreadID == thread && connection.core === core
                    await connection.close()
                    return ok
                } catch {
                    return false
                }
            }
            handlers.append(handler)
        }
        var onCore = true
        for handler in handlers { onCore = await handler.value && onCore }
        await listener.close()
        return (handlers.count, onCore)
    }

    @Test("2 cores, 64 connections to one port: both cores accept, each connection's I/O runs on its accepting core",
          arguments: ["127.0.0.1", "::1"])
    func reusePortSpreads(host: String) async throws {
        try await withRuntime(cores: 2) { runtime in
            let group = try bindGroup(runtime, host: host)
            let connections = 64
            let accepted = SharedCounter()
            let servers = try runtime.cores.map { core in
                try runtime.spawn(on: core.index) { core in
                    try await Self.serve(core: core, group: group, accepted: accepted, total: connections)
                }
            }
            try await runtime.run(on: 0) { core in
                var clients: [TCPTransport] = []
                for i in 0..<connections {
                    let client = try await TCPDialer().dial(group.address, on: core)
                    try await client.send(Message(payload(sender: i, sequence: 0, size: 16)))
                    let echo = try await client.recv()
                    #expect(echo.bytes == payload(sender: i, sequence: 0, size: 16))
                    clients.append(client)
                }
                for client in clients { await client.close() }
                while accepted.value.load(ordering: .relaxed) < connections { await Task.yield() }
            }
            // Every connection is accepted: end the accept loops (the kernel spreads connections
            // by hash, so no extra connection is sure to reach a given core).
            for server in servers { server.cancel() }
            var perCore: [(Int, Bool)] = []
            for server in servers { perCore.append(try await server.value) }
            #expect(perCore.allSatisfy { $0.0 > 0 }, "connections per core: \(perCore.map(\.0))")
            #expect(perCore.reduce(0) { $0 + $1.0 } >= connections)
            #expect(perCore.allSatisfy { $0.1 })
        }
    }
}
