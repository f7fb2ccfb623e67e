import NetRPC
import NetRuntime
import NetTCP
import NetTransport
import NetTestSupport
import Testing

/// A TCP connection seen only through what a driver must write: it keeps `Transport`'s default
/// `startReceiving` (a receive loop in a task) and `pauseReceiving`, which does nothing.
final class PlainTransport: Transport {
    let inner: TCPTransport
    init(_ inner: TCPTransport) { self.inner = inner }
    var core: Core { inner.core }
    func send(_ message: Message) async throws { try await inner.send(message) }
    func send(_ head: Message, _ body: Message) async throws { try await inner.send(head, body) }
    func trySend(_ head: Message, _ body: Message) throws(TransportError) -> Bool { try inner.trySend(head, body) }
    func flush() { inner.flush() }
    func recv(cancellable: Bool) async throws -> Message { try await inner.recv(cancellable: cancellable) }
    func tryRecv() throws(TransportError) -> Message? { try inner.tryRecv() }
    func allocateBuffer(capacity: Int) -> WritableBuffer { inner.allocateBuffer(capacity: capacity) }
    func close() async { await inner.close() }
    var isOpen: Bool { inner.isOpen }
    var localAddress: SocketAddress? { inner.localAddress }
    var peerAddress: SocketAddress? { inner.peerAddress }
}

/// Accepts ``PlainTransport``s.
final class PlainListener: TransportListener {
    let inner: TCPListener
    init(_ inner: TCPListener) { self.inner = inner }
    var core: Core { inner.core }
    func accept() async throws -> PlainTransport { PlainTransport(try await inner.accept()) }
    func close() async { await inner.close() }
    var localAddress: SocketAddress { inner.localAddress }
}

@Suite("RPC over a driver with the default receive loop", .timeLimit(.minutes(1)))
struct RPCDefaultReceiveTests {
    @Test("Calls work over a transport that keeps the default receive loop, on both sides")
    func callsOverDefaultLoop() async throws {
        try await withRuntime { runtime in
            let address = try startPlainServer(runtime, configuration: .init())
            let replies = try await runtime.run(on: 0) { core in
                let connection = try RPCConnection(PlainTransport(try await TCPDialer().dial(address, on: core)))
                var replies: [String] = []
                for text in ["a", "bc", "def"] { replies.append(try await connection.call(TestAPI.echo, text)) }
                replies.append(try await connection.call(TestAPI.inline, "xyz"))
                await connection.close()
                return replies
            }
            #expect(replies == ["a", "bc", "def", "zyx"])
        }
    }

    @Test("A client that sends without reading, over a driver that cannot pause: answers in order until more than maximumConcurrentCalls frames wait, then resourceExhausted and the close; others carry on")
    func unreadAnswersWithoutPause() async throws {
        try await withRuntime { runtime in
            let address = try startPlainServer(runtime, configuration: .defaults { $0.maximumConcurrentCalls = 8 })
            let (seen, closed, healthy) = try await runtime.run(on: 0) { core in
                let raw = RawClient(transport: try await TCPDialer().dial(address, on: core))
                try await raw.hello()
                var encoder = WireEncoder()
                encoder.encode(256 * 1024)
                // 192 answers of 256 KiB (48 MiB) cannot all wait in socket buffers; the requests are small.
                for id in 1...192 as ClosedRange<UInt64> { try await raw.request(id, method: TestAPI.fill.id, payload: encoder.bytes) }
                var seen: [Seen] = []
                while seen.last?.kind != .error { seen.append(try await raw.next()) }
                let closed = await raw.isClosedByServer()
                await raw.transport.close()
                let other = try RPCConnection(try await TCPDialer().dial(address, on: core))
                let healthy = try await other.call(TestAPI.echo, "others carry on")
                await other.close()
                return (seen, closed, healthy)
            }
            let answered = seen.dropLast()
            #expect(!answered.isEmpty && answered.count < 192)
            #expect(answered.map(\.callID) == Array(1...UInt64(answered.count)))
            #expect(answered.allSatisfy { $0.kind == .response })
            #expect(seen.last?.callID == 0 && seen.last?.status?.code == .resourceExhausted)
            #expect(closed)
            #expect(healthy == "others carry on")
        }
    }

    /// A server of `TestService` on 127.0.0.1, core 0, whose connections are ``PlainTransport``s.
    func startPlainServer(_ runtime: Runtime, configuration: RPCConfiguration) throws -> SocketAddress {
        let server = RPCServer(services: [TestService(probe: Probe())], configuration: configuration)
        let group = try TCPListenerGroup.bind(SocketAddress(host: "127.0.0.1", port: 0)!, cores: 1)
        _ = try runtime.spawn(on: 0) { core in
            try await server.serve(PlainListener(try group.listener(on: core)))
        }
        return group.address
    }
}
