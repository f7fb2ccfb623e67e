import NetRPC
import NetRuntime
import NetTCP
import NetTransport
import NetTestSupport
import Testing

@Suite("RPC service suite", .timeLimit(.minutes(1)))
struct RPCCallTests {
    @Test("Typed, raw, JSON and by-name calls return their responses; metadata and deadlines reach the handler", arguments: [TestTransport.tcp])
    func basics(over transport: TestTransport) async throws {
        let results = try await transport.withConnection { core, rpc in
            let echo = try await rpc.call(TestAPI.echo, "hello")
            let raw = String(try await rpc.call(TestAPI.raw, Message("raw bytes")))
            let json = try await rpc.call(TestAPI.json, TestAPI.Point(x: 2, y: 1.5))
            let byName = try await rpc.call(TestAPI.echo, "by name", options: RPCCallOptions(byName: true))
            let metadata = try await rpc.call(TestAPI.metadata, "traceparent", options: RPCCallOptions(metadata: ["traceparent": "00-abc-01"]))
            let noDeadline = try await rpc.call(TestAPI.deadline, 0)
            let deadline = try await rpc.call(TestAPI.deadline, 0, options: .timeout(.seconds(5)))
            return (echo, raw, json, byName, metadata, noDeadline, deadline)
        }
        #expect(results.0 == "hello")
        #expect(results.1 == "raw bytes")
        #expect(results.2 == TestAPI.Point(x: 4, y: 3))
        #expect(results.3 == "by name")
        #expect(results.4 == "00-abc-01")
        #expect(results.5 == -1)
        #expect(results.6 > 4000 && results.6 <= 5000)
    }

    @Test("Concurrent calls on one connection complete out of order, each with its own response", arguments: [TestTransport.tcp])
    func outOfOrder(over transport: TestTransport) async throws {
        let probe = Probe()
        let order = try await transport.withConnection(probe: probe) { core, rpc in
            var order: [Int] = []
            var tasks: [Task<Void, any Error>] = []
            for key in [3, 1, 2, 0] {
                tasks.append(Task {
                    _ = core
                    let reply = try await rpc.call(TestAPI.hold, key)
                    #expect(reply == key)
                    order.append(reply)
                })
            }
            // All four are in flight on the server; release them in another order than sent,
            // each once the one before has its response.
            await probe.until { $0.started.count == 4 }
            for (done, key) in [0, 1, 2, 3].enumerated() {
                probe.open(key)
                while order.count == done { await Task.yield() }
            }
            for task in tasks { try await task.value }
            return order
        }
        #expect(order == [0, 1, 2, 3])
    }

    @Test("An inline handler answers on its core, its errors reach the caller typed, and it is answered while another call's handler is suspended", arguments: [TestTransport.tcp])
    func inlineHandler(over transport: TestTransport) async throws {
        let probe = Probe()
        let (reply, failed, status, whileHeld, held, oneWay) = try await transport.withConnection(probe: probe) { core, rpc in
            let reply = try await rpc.call(TestAPI.inline, "abc")
            var failed: RPCError?
            do { _ = try await rpc.call(TestAPI.inline, "fail") } catch { failed = error as? RPCError }
            var status: RPCError?
            do { _ = try await rpc.call(TestAPI.inline, "status") } catch { status = error as? RPCError }
            // A call whose handler waits does not hold up an inline one behind it.
            let holding = Task {
                _ = core
                return try await rpc.call(TestAPI.hold, 5)
            }
            await probe.until { $0.started.contains(5) }
            let whileHeld = try await rpc.call(TestAPI.inline, "xyz")
            probe.open(5)
            let held = try await holding.value
            try await rpc.notify(TestAPI.inline, "one-way")
            await probe.until { $0.recorded.contains("one-way") }
            return (reply, failed, status, whileHeld, held, true)
        }
        #expect(reply == "cba")
        #expect(failed?.code == .handlerError)
        #expect(failed?.message.contains("TestFailure: fail") == true)
        #expect(status?.code == .resourceExhausted)
        #expect(status?.message == "no room")
        #expect(whileHeld == "zyx")
        #expect(held == 5)
        #expect(oneWay)
    }

    @Test("Handler errors, unknown methods and one-way messages", arguments: [TestTransport.tcp])
    func statuses(over transport: TestTransport) async throws {
        let probe = Probe()
        try await transport.withServer(probe: probe) { runtime, address in
            let (failed, missing, after) = try await runtime.run(on: 0) { core in
                let rpc = try await transport.connect(address, on: core)
                let failed = await caught { _ = try await rpc.call(TestAPI.fail, "boom") } as? RPCError
                let missing = await caught { _ = try await rpc.call(TestAPI.missing, "?") } as? RPCError
                try await rpc.notify(TestAPI.record, "one-way")
                let after = try await rpc.call(TestAPI.echo, "still fine")
                await rpc.close()
                return (failed, missing, after)
            }
            #expect(failed?.code == .handlerError)
            #expect(failed?.message.contains("boom") == true)
            #expect(missing?.code == .unknownMethod)
            #expect(after == "still fine")
            await probe.until { !$0.recorded.isEmpty }
            #expect(probe.snapshot.recorded == ["one-way"])
        }
    }

    @Test("A deadline expires on both sides: the caller gets deadlineExceeded, the handler is cancelled", arguments: [TestTransport.tcp])
    func deadline(over transport: TestTransport) async throws {
        let probe = Probe()
        let (errors, key) = try await transport.withConnection(probe: probe) { core, rpc -> ([RPCError?], Int?) in
            // The handler is cancelled only if it started before the deadline. Where the request
            // arrives after it (a starved guest), the server never starts the handler and there
            // is nothing to cancel: try again with twice the time, until a handler has started.
            _ = try await rpc.call(TestAPI.echo, "warm")
            var timeout = RDMATestEnvironment.scaled(.milliseconds(50))
            var errors: [RPCError?] = []
            for key in 30_000..<30_008 {
                errors.append(await caught { _ = try await rpc.call(TestAPI.hold, key, options: .timeout(timeout)) } as? RPCError)
                // Frames are served in order, and a handler's task is resumed as its request is
                // read, ahead of anything the echo's answer can wake on this one core (client and
                // server share it): once the echo is answered, the handler has started or never will.
                _ = try await rpc.call(TestAPI.echo, "after")
                if probe.snapshot.started.contains(key) { return (errors, key) }
                timeout = timeout * 2
            }
            return (errors, nil)
        }
        #expect(errors.allSatisfy { $0?.code == .deadlineExceeded })
        let started = try #require(key, "no handler started before its deadline in 8 tries")
        await probe.until { $0.cancelled.contains(started) }
        // Exactly the handler that started was cancelled, once (the tries before it never ran).
        #expect(probe.snapshot.started == [started])
        #expect(probe.snapshot.cancelled == [started])
    }

    @Test("Cancelling the caller's task sends a cancel that cancels the handler", arguments: [TestTransport.tcp])
    func cancellation(over transport: TestTransport) async throws {
        let probe = Probe()
        let error = try await transport.withConnection(probe: probe) { core, rpc in
            let call = Task {
                _ = core
                return await caught { _ = try await rpc.call(TestAPI.hold, 20_000) } as? RPCError
            }
            await probe.until { !$0.started.isEmpty }
            call.cancel()
            let error = await call.value
            // The connection carries on.
            let after = try await rpc.call(TestAPI.echo, "after")
            #expect(after == "after")
            return error
        }
        #expect(error?.code == .cancelled)
        await probe.until { !$0.cancelled.isEmpty }
        #expect(probe.snapshot.cancelled == [20_000])
    }

    @Test("A call made with cancellable: false outlives its task's cancellation and gets its response; its deadline still ends it", arguments: [TestTransport.tcp])
    func uncancellableCall(over transport: TestTransport) async throws {
        let probe = Probe()
        let (reply, after, expired) = try await transport.withConnection(probe: probe) { core, rpc in
            let call = Task {
                _ = core
                return try await rpc.call(TestAPI.hold, 9, options: RPCCallOptions(cancellable: false))
            }
            await probe.until { $0.started.contains(9) }
            call.cancel()
            // Turns go by with the task cancelled: a cancellable call would have ended by now.
            let after = try await rpc.call(TestAPI.echo, "after")
            probe.open(9)
            let reply: String
            do { reply = String(try await call.value) } catch { reply = "\(error)" }
            var expired: RPCError?
            do {
                _ = try await rpc.call(TestAPI.hold, 10, options: RPCCallOptions(deadline: .now + .milliseconds(100), cancellable: false))
            } catch {
                expired = error as? RPCError
            }
            return (reply, after, expired)
        }
        #expect(reply == "9")
        #expect(after == "after")
        #expect(!probe.snapshot.cancelled.contains(9))
        #expect(expired?.code == .deadlineExceeded)
    }

    @Test("callAll keeps a batch in flight from one task: outcomes in request order, a failing call fails alone, requests past the in-flight limit go out as replies come, and none are sent once the task is cancelled", arguments: [TestTransport.tcp])
    func callAll(over transport: TestTransport) async throws {
        let probe = Probe()
        try await transport.withServer(probe: probe) { runtime, address in
            let (outcomes, cancelled, afterClose) = try await runtime.run(on: 0) { core in
                // 100 requests through at most 8 in flight: the rest go out as replies come.
                let rpc = try await transport.connect(address, on: core, configuration: .defaults { $0.maximumConcurrentCalls = 8 })
                let requests = (0..<100).map { $0 == 37 ? "fail" : "r\($0)" }
                let outcomes = await rpc.callAll(TestAPI.inline, requests, options: RPCCallOptions())
                let batch = Task {
                    _ = core
                    return await rpc.callAll(TestAPI.inline, ["never-1", "never-2"], options: RPCCallOptions())
                }
                batch.cancel()  // before it runs: this task holds the core until its next await
                let cancelled = await batch.value
                _ = try await rpc.call(TestAPI.echo, "flush")  // anything sent has been handled by now
                await rpc.close()
                let afterClose = await rpc.callAll(TestAPI.inline, ["a", "b"], options: RPCCallOptions())
                return (
                    outcomes.map { (try? $0.get()) ?? "error \($0.errorCode.map { "\($0)" } ?? "")" },
                    cancelled.map(\.errorCode), afterClose.map(\.errorCode))
            }
            #expect(outcomes.count == 100)
            for (index, text) in outcomes.enumerated() {
                #expect(text == (index == 37 ? "error handlerError" : String("r\(index)".reversed())))
            }
            #expect(cancelled == [.cancelled, .cancelled])
            #expect(!probe.snapshot.recorded.contains { $0.hasPrefix("never") })
            #expect(afterClose == [.connectionLost, .connectionLost])
        }
    }

    @Test("Callers wait for room past the in-flight limit, or fail fast when configured so", arguments: [TestTransport.tcp])
    func backpressure(over transport: TestTransport) async throws {
        let probe = Probe()
        try await transport.withServer(probe: probe) { runtime, address in
            let (startedWhileFull, waited, failFast) = try await runtime.run(on: 0) { core in
                let rpc = try await transport.connect(address, on: core, configuration: .defaults { $0.maximumConcurrentCalls = 2 })
                var tasks: [Task<Int, any Error>] = []
                for key in [1, 2, 3, 4] {
                    tasks.append(Task { _ = core; return try await rpc.call(TestAPI.hold, key) })
                }
                // Two calls reach the server; the other two wait for room on the client.
                await probe.until { $0.started.count == 2 }
                for _ in 0..<100 { await Task.yield() }
                let startedWhileFull = probe.snapshot.started
                for key in [1, 2, 3, 4] { probe.open(key) }
                var waited: [Int] = []
                for task in tasks { waited.append(try await task.value) }
                await rpc.close()

                let fast = try await transport.connect(address, on: core, configuration: .defaults {
                    $0.maximumConcurrentCalls = 1
                    $0.failFastWhenFull = true
                })
                let first = Task { _ = core; return try await fast.call(TestAPI.hold, 100) }
                while fast.pendingCount == 0 { await Task.yield() }
                let second = await caught { _ = try await fast.call(TestAPI.hold, 101) } as? RPCError
                probe.open(100)
                _ = try await first.value
                await fast.close()
                return (startedWhileFull, waited, second)
            }
            #expect(startedWhileFull == [1, 2])
            #expect(waited == [1, 2, 3, 4])
            #expect(failFast?.code == .resourceExhausted)
        }
    }

    @Test("A lost connection fails every pending call at once with connectionLost", arguments: [TestTransport.tcp])
    func connectionLost(over transport: TestTransport) async throws {
        try await transport.withServer(probe: Probe()) { runtime, address in
            let errors = try await runtime.run(on: 0) { core in
                let rpc = try await transport.connect(address, on: core)
                var tasks: [Task<RPCError?, Never>] = []
                for _ in 0..<5 {
                    tasks.append(Task { _ = core; return await caught { _ = try await rpc.call(TestAPI.hold, 30_000) } as? RPCError })
                }
                while rpc.pendingCount < 5 { await Task.yield() }
                await rpc.dropTransport()  // as if the network dropped it
                var errors: [RPCError.Code?] = []
                for task in tasks { errors.append(await task.value?.code) }
                let later = await caught { _ = try await rpc.call(TestAPI.echo, "x") } as? RPCError
                errors.append(later?.code)
                return errors
            }
            #expect(errors == Array(repeating: .connectionLost, count: 6))
        }
    }
}

@Suite("RPC client-side limits", .timeLimit(.minutes(1)))
struct RPCClientLimitTests {
    @Test("Metadata a frame cannot carry, or over the limit, is a typed error before anything is sent")
    func metadataLimits() async throws {
        try await withRuntime { runtime in
            let server = RPCServer(services: [TestService(probe: Probe())])
            let address = try startServer(runtime, server: server)
            let codes = try await runtime.run(on: 0) { core in
                let rpc = try RPCConnection(try await TCPDialer().dial(address, on: core), configuration: .defaults {
                    $0.maximumMetadataBytes = 1024
                })
                var codes: [RPCError.Code?] = []
                for metadata in [
                    [String(repeating: "k", count: 256): "v"],
                    ["k": String(repeating: "v", count: 70_000)],
                    ["k": String(repeating: "v", count: 2_000)],
                ] as [RPCMetadata] {
                    let error = await caught { _ = try await rpc.call(TestAPI.echo, "x", options: RPCCallOptions(metadata: metadata)) }
                    codes.append((error as? RPCError)?.code)
                }
                // The connection carries on.
                #expect(try await rpc.call(TestAPI.echo, "fine", options: RPCCallOptions(metadata: ["k": "v"])) == "fine")
                await rpc.close()
                return codes
            }
            #expect(codes == [.resourceExhausted, .resourceExhausted, .resourceExhausted])
        }
    }
}

extension Result where Failure == RPCError {
    /// The failure's code, or nil on success.
    var errorCode: RPCError.Code? {
        if case .failure(let error) = self { return error.code }
        return nil
    }
}
