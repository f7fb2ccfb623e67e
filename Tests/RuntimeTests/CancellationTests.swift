#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
import NetTestSupport
import Testing

@Suite("Cancellation", .timeLimit(.minutes(1)))
struct CancellationTests {
    @Test("Cancelling a pending recv ends it with CancellationError and consumes no data")
    func cancelRecv() async throws {
        try await withRuntime { runtime in
            let (a, b) = try Socket.pair()
            defer { Socket.closeNow(a); Socket.closeNow(b) }
            let task = try runtime.spawn(on: 0) { core in
                let buffer = RawBuffer(count: 8)
                return await caught { _ = try await core.recv(a, into: buffer.bytes) }
            }
            try await waitForPending(runtime, atLeast: 1)
            task.cancel()
            let error = try await task.value
            #expect(error is CancellationError)
            // The socket still works and the byte written later goes to the next recv.
            try writeAll(b, [42])
            let byte = try await runtime.run(on: 0) { core in
                let buffer = RawBuffer(count: 8)
                let n = try await core.recv(a, into: buffer.bytes)
                return n == 1 ? buffer.prefix(1)[0] : 0
            }
            #expect(byte == 42)
            let pending = try await runtime.run(on: 0) { core in core.statistics.pendingOperations }
            #expect(pending == 0)
        }
    }

    @Test("An uncancellable poll outlives its task's cancellation and ends when the descriptor is readable")
    func uncancellablePoll() async throws {
        try await withRuntime { runtime in
            let (a, b) = try Socket.pair()
            defer { Socket.closeNow(a); Socket.closeNow(b) }
            let task = try runtime.spawn(on: 0) { core in
                await caught { try await core.waitReadable(a, cancellable: false) }
            }
            try await waitForPending(runtime, atLeast: 1)
            task.cancel()
            try writeAll(b, [7])
            #expect(try await task.value == nil)  // readable, not cancelled
            let pending = try await runtime.run(on: 0) { core in core.statistics.pendingOperations }
            #expect(pending == 0)
        }
    }

    @Test("An uncancellable recv outlives its task's cancellation and returns the bytes written later; a cancellable one in the same place ends")
    func uncancellableRecv() async throws {
        try await withRuntime { runtime in
            let (a, b) = try Socket.pair()
            defer { Socket.closeNow(a); Socket.closeNow(b) }
            func receiver(cancellable: Bool) throws -> Task<Result<Int, any Error>, any Error> {
                try runtime.spawn(on: 0) { core in
                    let buffer = RawBuffer(count: 8)
                    do {
                        let n = try await core.recv(a, into: buffer.bytes, cancellable: cancellable)
                        return .success(n == 1 ? Int(buffer.prefix(1)[0]) : -1)
                    } catch {
                        return .failure(error)
                    }
                }
            }
            let kept = try receiver(cancellable: false)
            try await waitForPending(runtime, atLeast: 1)
            kept.cancel()
            // A turn of the core after the cancellation: a cancellable receive would have ended.
            try await runtime.run(on: 0) { core in try await core.nop() }
            try writeAll(b, [9])
            let keptResult = try await kept.value
            #expect((try? keptResult.get()) == 9)

            let ended = try receiver(cancellable: true)
            try await waitForPending(runtime, atLeast: 1)
            ended.cancel()
            let endedResult = try await ended.value
            #expect(throws: CancellationError.self) { try endedResult.get() }
            let pending = try await runtime.run(on: 0) { core in core.statistics.pendingOperations }
            #expect(pending == 0)
        }
    }

    @Test("Cancelling a pending sleep ends it with CancellationError")
    func cancelSleep() async throws {
        try await withRuntime { runtime in
            let task = try runtime.spawn(on: 0) { core in
                await caught { try await core.sleep(for: .seconds(3600)) }
            }
            try await waitForPending(runtime, atLeast: 1)
            task.cancel()
            #expect(try await task.value is CancellationError)
        }
    }

    @Test("An operation started by an already cancelled task fails at once")
    func alreadyCancelled() async throws {
        try await withRuntime { runtime in
            let task = try runtime.spawn(on: 0) { core in
                withUnsafeCurrentTask { $0?.cancel() }
                return await caught { try await core.sleep(for: .seconds(3600)) }
            }
            #expect(try await task.value is CancellationError)
        }
    }

    @Test("Cancelling from the core itself (a sibling task) works too")
    func cancelFromCore() async throws {
        try await withRuntime { runtime in
            let (a, b) = try Socket.pair()
            defer { Socket.closeNow(a); Socket.closeNow(b) }
            let error = try await runtime.run(on: 0) { core in
                await withTaskGroup(of: (any Error)?.self) { group in
                    group.addTask {
                        let buffer = RawBuffer(count: 8)
                        return await caught { _ = try await core.recv(a, into: buffer.bytes) }
                    }
                    while core.statistics.pendingOperations == 0 { await Task.yield() }
                    group.cancelAll()
                    return await group.next()!
                }
            }
            #expect(error is CancellationError)
        }
    }

    @Test("Closing a descriptor ends the operations pending on it")
    func closeCancelsPending() async throws {
        try await withRuntime { runtime in
            let (a, b) = try Socket.pair()
            defer { Socket.closeNow(b) }
            let task = try runtime.spawn(on: 0) { core in
                let buffer = RawBuffer(count: 8)
                return await caught { _ = try await core.recv(a, into: buffer.bytes) }
            }
            try await waitForPending(runtime, atLeast: 1)
            try await runtime.run(on: 0) { core in try await core.close(a) }
            let error = try await task.value
            #expect((error as? IOError)?.code == ECANCELED)
        }
    }

    @Test("Shutting the runtime down ends pending operations with a typed error")
    func shutdownWithPending() async throws {
        let runtime = try Runtime(configuration: .defaults { $0.coreCount = 1 })
        let (a, b) = try Socket.pair()
        defer { Socket.closeNow(a); Socket.closeNow(b) }
        let task = try runtime.spawn(on: 0) { core in
            let buffer = RawBuffer(count: 8)
            return await caught { _ = try await core.recv(a, into: buffer.bytes) }
        }
        try await waitForPending(runtime, atLeast: 1)
        await runtime.stop()
        let error = try await task.value
        #expect((error as? RuntimeError)?.isShutDown == true)
    }
}
