import NetRPC
import NetRuntime
import NetTCP
import NetTransport
import NetTestSupport
import Testing

/// A client that speaks frames by hand, to send what a correct client never would.
struct RawClient {
    let transport: TCPTransport
    var writer: FrameWriter { FrameWriter { [transport] in transport.allocateBuffer(capacity: $0) } }

    func hello() async throws {
        try await transport.send(writer.hello(HelloLimits(maximumConcurrentCalls: 100, maximumMetadataBytes: 4096)))
    }

    func send(_ bytes: [UInt8]) async throws { try await transport.send(Message(bytes)) }

    func request(_ id: UInt64, method: UInt32, payload: [UInt8], metadata: RPCMetadata = RPCMetadata()) async throws {
        let head = writer.call(.request, callID: id, method: .id(method), timeoutNanoseconds: nil, metadata: metadata)
        try await transport.send(head, Message(payload))
    }

    /// The next frame that is not the server's hello.
    func next() async throws -> Seen {
        while true {
            let frame = try RPCFrame.parse(try await transport.recv(), maximumMetadataBytes: 1 << 20)
            if frame.kind != .hello {
                return Seen(kind: frame.kind, callID: frame.callID, status: frame.status, payload: frame.payload.bytes)
            }
        }
    }

    /// Whether the server has closed the connection (the next receive ends it).
    func isClosedByServer() async -> Bool {
        do {
            while true { _ = try await transport.recv() }
        } catch {
            return (error as? TransportError)?.code == .closed
        }
    }
}

/// What a raw client received.
struct Seen: Sendable {
    var kind: FrameKind
    var callID: UInt64
    var status: RPCError?
    var payload: [UInt8]
}

/// A wire-codec encoding of a string.
func wireString(_ text: String) -> [UInt8] {
    var encoder = WireEncoder()
    encoder.encode(text)
    return encoder.bytes
}

@Suite("RPC bad input", .timeLimit(.minutes(1)))
struct RPCBadInputTests {
    /// Runs `bad` on a raw connection, then checks that another client is still served.
    func check<R: Sendable>(
        configuration: RPCConfiguration = .init(),
        tcp: TCPConfiguration = .init(),
        _ bad: @escaping @Sendable (RawClient) async throws -> R
    ) async throws -> R {
        try await withRuntime { runtime in
            let server = RPCServer(services: [TestService(probe: Probe())], configuration: configuration)
            let address = try startServer(runtime, server: server, tcp: tcp)
            return try await runtime.run(on: 0) { core in
                let raw = RawClient(transport: try await TCPDialer().dial(address, on: core))
                let result = try await bad(raw)
                await raw.transport.close()
                let healthy = try RPCConnection(try await TCPDialer().dial(address, on: core))
                #expect(try await healthy.call(TestAPI.echo, "others carry on") == "others carry on")
                await healthy.close()
                return result
            }
        }
    }

    @Test("An unknown frame kind: an error frame (call 0, protocolError), then the connection closes")
    func unknownKind() async throws {
        let (frame, closed) = try await check { raw in
            try await raw.hello()
            try await raw.send([1, 77, 0, 0] + [UInt8](repeating: 0, count: 7) + [5])
            return (try await raw.next(), await raw.isClosedByServer())
        }
        #expect(frame.kind == .error && frame.callID == 0 && frame.status?.code == .protocolError)
        #expect(closed)
    }

    @Test("An unknown protocol version, a first frame that is not a hello, a truncated header: closed with protocolError")
    func versionAndHello() async throws {
        for bad in [[9, 1, 0, 0] + [UInt8](repeating: 0, count: 8), [1, 6, 0, 0] + [UInt8](repeating: 0, count: 8), [1, 1, 0]] as [[UInt8]] {
            let (frame, closed) = try await check { raw in
                if bad.count < 12 { try await raw.hello() }
                try await raw.send(bad)
                return (try await raw.next(), await raw.isClosedByServer())
            }
            #expect(frame.kind == .error && frame.status?.code == .protocolError)
            #expect(closed)
        }
    }

    @Test("An unknown method and an undecodable payload fail their call; the connection carries on")
    func perCallErrors() async throws {
        let (missing, undecodable, good) = try await check { raw in
            try await raw.hello()
            try await raw.request(1, method: 99, payload: wireString("x"))
            let missing = try await raw.next()
            try await raw.request(2, method: TestAPI.echo.id, payload: [0xFF, 0xFF])  // a length past the end
            let undecodable = try await raw.next()
            try await raw.request(3, method: TestAPI.echo.id, payload: wireString("ok"))
            let good = try await raw.next()
            return (missing, undecodable, good)
        }
        #expect(missing.kind == .error && missing.callID == 1 && missing.status?.code == .unknownMethod)
        #expect(undecodable.kind == .error && undecodable.callID == 2 && undecodable.status?.code == .undecodable)
        #expect(good.kind == .response && good.callID == 3 && good.payload == wireString("ok"))
    }

    @Test("A cancel or a response for an unknown ID is ignored")
    func unknownIDs() async throws {
        let reply = try await check { raw in
            try await raw.hello()
            try await raw.transport.send(raw.writer.bare(.cancel, callID: 12345))
            try await raw.transport.send(raw.writer.response(callID: 777))
            try await raw.request(1, method: TestAPI.echo.id, payload: wireString("fine"))
            return try await raw.next()
        }
        #expect(reply.kind == .response && reply.callID == 1)
    }

    @Test("A duplicate call ID closes the connection with protocolError")
    func duplicateID() async throws {
        let (frame, closed) = try await check { raw in
            try await raw.hello()
            var encoder = WireEncoder()
            encoder.encode(5_000)
            try await raw.request(7, method: TestAPI.hold.id, payload: encoder.bytes)
            try await raw.request(7, method: TestAPI.hold.id, payload: encoder.bytes)
            return (try await raw.next(), await raw.isClosedByServer())
        }
        #expect(frame.kind == .error && frame.callID == 0 && frame.status?.code == .protocolError)
        #expect(closed)
    }

    @Test("More calls in flight than allowed: resourceExhausted for the extra call")
    func tooManyCalls() async throws {
        let frame = try await check(configuration: .defaults { $0.maximumConcurrentCalls = 2 }) { raw in
            try await raw.hello()
            var encoder = WireEncoder()
            encoder.encode(5_000)
            for id in 1...3 as ClosedRange<UInt64> { try await raw.request(id, method: TestAPI.hold.id, payload: encoder.bytes) }
            return try await raw.next()
        }
        #expect(frame.kind == .error && frame.callID == 3 && frame.status?.code == .resourceExhausted)
    }

    @Test("A client that sends without reading its answers gets them all later, in order: the server waits for room, and does not drop, reorder or close")
    func unreadAnswers() async throws {
        // 128 answers of 256 KiB (32 MiB) cannot all wait in socket buffers: the server's inline
        // answers run out of room, so it pauses its reading until each answer has gone.
        let count = 128, size = 256 * 1024
        let seen = try await check { raw in
            try await raw.hello()
            var encoder = WireEncoder()
            encoder.encode(size)
            for id in 1...UInt64(count) { try await raw.request(id, method: TestAPI.fill.id, payload: encoder.bytes) }
            try await raw.transport.send(raw.writer.bare(.ping, callID: 9))
            var seen: [(FrameKind, UInt64, Int)] = []
            for _ in 0...count {
                let frame = try await raw.next()
                seen.append((frame.kind, frame.callID, frame.payload.count))
            }
            return seen.map { "\($0.0) \($0.1) \($0.2)" }
        }
        let answerBytes = wireString(String(repeating: "x", count: size)).count
        var expected = (1...count).map { "\(FrameKind.response) \($0) \(answerBytes)" }
        expected.append("\(FrameKind.pong) 9 0")
        #expect(seen == expected)
    }

    @Test("A response larger than the connection carries fails its call with resourceExhausted, inline or not; the connection carries on")
    func responseTooLarge() async throws {
        let tcp = TCPConfiguration.defaults { $0.maximumFrameSize = 64 * 1024 }
        let (inline, later, good) = try await check(tcp: tcp) { raw in
            try await raw.hello()
            var encoder = WireEncoder()
            encoder.encode(100_000)
            try await raw.request(1, method: TestAPI.fill.id, payload: encoder.bytes)
            let inline = try await raw.next()
            try await raw.request(2, method: TestAPI.fillLater.id, payload: encoder.bytes)
            let later = try await raw.next()
            try await raw.request(3, method: TestAPI.echo.id, payload: wireString("still here"))
            return (inline, later, try await raw.next())
        }
        #expect(inline.kind == .error && inline.callID == 1 && inline.status?.code == .resourceExhausted)
        #expect(later.kind == .error && later.callID == 2 && later.status?.code == .resourceExhausted)
        #expect(good.kind == .response && good.callID == 3 && good.payload == wireString("still here"))
    }

    @Test("A request larger than the connection carries fails with resourceExhausted before it is sent; the connection carries on")
    func requestTooLarge() async throws {
        try await withRuntime { runtime in
            let server = RPCServer(services: [TestService(probe: Probe())])
            let address = try startServer(runtime, server: server)
            try await runtime.run(on: 0) { core in
                let small = TCPConfiguration.defaults { $0.maximumFrameSize = 64 * 1024 }
                let connection = try RPCConnection(try await TCPDialer(configuration: small).dial(address, on: core))
                var failure: RPCError?
                do {
                    _ = try await connection.call(TestAPI.echo, String(repeating: "y", count: 100_000))
                } catch {
                    failure = error as? RPCError
                }
                #expect(failure?.code == .resourceExhausted)
                #expect(try await connection.call(TestAPI.echo, "after") == "after")
                await connection.close()
            }
        }
    }

    /// Runs `body` on core 0 of a one-core runtime, with a raw client whose answers are held
    /// up because it reads none: 32 answers of 1 MiB from call tasks, past what the socket
    /// buffers and the server's 64 KiB queue hold. `body` starts once every call has run (each
    /// then sends, or waits to send, its answer).
    func withStalledClient<R: Sendable>(
        _ configuration: RPCConfiguration, _ body: @escaping @Sendable (RPCServer, RawClient, SocketAddress, Core) async throws -> R
    ) async throws -> R {
        try await withRuntime(cores: 1) { runtime in
            let probe = Probe()
            let server = RPCServer(services: [TestService(probe: probe)], configuration: configuration)
            let tcp = TCPConfiguration.defaults {
                $0.maximumQueuedBytes = 64 * 1024
                $0.closeFlushTimeout = .milliseconds(100)
            }
            let address = try startServer(runtime, server: server, tcp: tcp)
            return try await runtime.run(on: 0) { core in
                let raw = RawClient(transport: try await TCPDialer().dial(address, on: core))
                try await raw.hello()
                var encoder = WireEncoder()
                encoder.encode(1 << 20)
                for id in 1...32 as ClosedRange<UInt64> { try await raw.request(id, method: TestAPI.fillLater.id, payload: encoder.bytes) }
                await probe.until { $0.recorded.count == 32 }
                let result = try await body(server, raw, address, core)
                await raw.transport.close()
                return result
            }
        }
    }

    @Test("A drain ends although a client reads nothing: its go-away cannot be sent, and the drain timeout closes it; other connections drain too")
    func drainPastAClientThatDoesNotRead() async throws {
        let (closedByDrain, healthyRefused) = try await withStalledClient(.defaults { $0.drainTimeout = .milliseconds(300) }) { server, _, address, core in
            let healthy = try RPCConnection(try await TCPDialer().dial(address, on: core))
            #expect(try await healthy.call(TestAPI.echo, "before") == "before")
            server.beginDrain()
            await server.drained()
            var refused: RPCError?
            do { _ = try await healthy.call(TestAPI.echo, "after") } catch { refused = error as? RPCError }
            await healthy.close()
            return (server.connectionCount == 0, refused != nil)
        }
        #expect(closedByDrain)
        #expect(healthyRefused)
    }

    @Test("A client that reads nothing and then breaks the protocol is closed within the close timeout, though its error cannot be sent")
    func brokenProtocolWhileAnswersWait() async throws {
        let stillOpen = try await withStalledClient(.defaults { $0.closeTimeout = .milliseconds(200) }) { server, raw, _, _ in
            let stillOpen = server.connectionCount == 1
            try await raw.send([1, 77, 0, 0] + [UInt8](repeating: 0, count: 7) + [5])  // an unknown frame kind
            // Ended by the server, with the client still reading nothing.
            await server.waitForConnections(atMost: 0)
            return stillOpen
        }
        #expect(stillOpen)
    }

    @Test("Oversize metadata is refused as the protocol says: before the hello, the connection closes; on a one-way call, nothing is sent back; on a duplicate call ID, the connection closes")
    func oversizeMetadataEdges() async throws {
        let small = RPCConfiguration.defaults { $0.maximumMetadataBytes = 64 }
        let big: RPCMetadata = ["big": String(repeating: "m", count: 500)]
        let (beforeHello, closed) = try await check(configuration: small) { raw in
            try await raw.request(1, method: TestAPI.echo.id, payload: wireString("x"), metadata: big)
            return (try await raw.next(), await raw.isClosedByServer())
        }
        #expect(beforeHello.kind == .error && beforeHello.callID == 0 && beforeHello.status?.code == .protocolError)
        #expect(closed)

        let afterOneWay = try await check(configuration: small) { raw in
            try await raw.hello()
            let head = raw.writer.call(.oneWay, callID: 2, method: .id(TestAPI.record.id), timeoutNanoseconds: nil, metadata: big)
            try await raw.transport.send(head, Message(wireString("x")))
            try await raw.transport.send(raw.writer.bare(.ping, callID: 5))
            return try await raw.next()
        }
        #expect(afterOneWay.kind == .pong && afterOneWay.callID == 5)

        let (duplicate, closedAgain) = try await check(configuration: small) { raw in
            try await raw.hello()
            var encoder = WireEncoder()
            encoder.encode(5_000)
            try await raw.request(7, method: TestAPI.hold.id, payload: encoder.bytes)
            try await raw.request(7, method: TestAPI.echo.id, payload: wireString("x"), metadata: big)
            return (try await raw.next(), await raw.isClosedByServer())
        }
        #expect(duplicate.kind == .error && duplicate.callID == 0 && duplicate.status?.code == .protocolError)
        #expect(closedAgain)
    }

    @Test("Metadata that is not UTF-8 fails its call with protocolError; the connection carries on")
    func metadataNotUTF8() async throws {
        let (bad, good) = try await check { raw in
            try await raw.hello()
            let head = raw.writer.call(.request, callID: 1, method: .id(TestAPI.echo.id), timeoutNanoseconds: nil, metadata: ["k": "zz"])
            var bytes = head.bytes
            // The value's two bytes become a UTF-8 lead byte and a byte that cannot follow it.
            let at = bytes.count - 2
            #expect(bytes[at] == UInt8(ascii: "z") && bytes[at + 1] == UInt8(ascii: "z"))
            bytes[at] = 0xC3
            bytes[at + 1] = 0x28
            try await raw.transport.send(Message(bytes), Message(wireString("x")))
            let bad = try await raw.next()
            try await raw.request(2, method: TestAPI.echo.id, payload: wireString("fine"))
            return (bad, try await raw.next())
        }
        #expect(bad.kind == .error && bad.callID == 1 && bad.status?.code == .protocolError)
        #expect(good.kind == .response && good.callID == 2)
    }

    @Test("Oversize metadata: resourceExhausted for that call")
    func oversizeMetadata() async throws {
        let frame = try await check(configuration: .defaults { $0.maximumMetadataBytes = 64 }) { raw in
            try await raw.hello()
            try await raw.request(1, method: TestAPI.echo.id, payload: wireString("x"), metadata: ["big": String(repeating: "m", count: 500)])
            return try await raw.next()
        }
        #expect(frame.kind == .error && frame.callID == 1 && frame.status?.code == .resourceExhausted)
    }
}
