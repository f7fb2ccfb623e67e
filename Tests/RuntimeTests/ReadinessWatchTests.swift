#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
import NetTestSupport
import Synchronization
import Testing

/// What a test's readiness handler saw; Sendable, so the test can read it after the core stops.
private final class WatchRecord: Sendable {
    let results = Mutex<[Int32]>([])
    let onCore = Mutex<[Bool]>([])
    let rearmErrors = Mutex<[RuntimeError]>([])
    var count: Int { results.withLock { $0.count } }
}

/// Records each call; asks again from inside the call when `rearm` is set.
private final class RecordingHandler: CoreReadinessHandler {
    let core: Core
    let fd: Int32
    let record: WatchRecord
    var rearm = false
    var onCall: () -> Void = {}

    init(core: Core, fd: Int32, record: WatchRecord) {
        self.core = core
        self.fd = fd
        self.record = record
    }

    func coreDescriptorIsReadable(_ result: Int32) {
        record.results.withLock { $0.append(result) }
        record.onCore.withLock { $0.append(core.isCurrent) }
        onCall()
        if rearm {
            do throws(RuntimeError) { try core.whenReadable(fd, self) } catch { record.rearmErrors.withLock { $0.append(error) } }
        }
    }
}

@Suite("Readiness watches", .timeLimit(.minutes(1)))
struct ReadinessWatchTests {
    @Test("A watch calls its handler once, on the core's thread, when the descriptor becomes readable; a task it resumes runs")
    func callsOnceWhenReadable() async throws {
        try await withRuntime { runtime in
            let record = WatchRecord()
            let (early, resumed) = try await runtime.run(on: 0) { core -> (Int, Int32) in
                var fds: [Int32] = [0, 0]
                guard pipe(&fds) == 0 else { return (-1, -1) }
                defer { close(fds[0]); close(fds[1]) }
                let handler = RecordingHandler(core: core, fd: fds[0], record: record)
                // The handler resumes a task waiting on the core, as RDMA's pump resumes a receiver.
                var waiter: CoreWakeHandle?
                handler.onCall = { if let waiter { core.resume(waiter, result: 5) } }
                try core.whenReadable(fds[0], handler)
                for _ in 0..<50 { await Task.yield() }  // turns pass; nothing to read yet
                let early = record.count
                let byte: UInt8 = 1
                _ = withUnsafeBytes(of: byte) { write(fds[1], $0.baseAddress, 1) }
                let resumed = try await suspendOnCore(core) { waiter = $0 }
                // One call per request: the byte is still there, so asking again calls at once.
                try core.whenReadable(fds[0], handler)
                while record.count < 2 { await Task.yield() }
                // Read it: a third request waits for the next byte.
                var sink: UInt8 = 0
                _ = read(fds[0], &sink, 1)
                try core.whenReadable(fds[0], handler)
                for _ in 0..<50 { await Task.yield() }
                let beforeThird = record.count
                _ = withUnsafeBytes(of: byte) { write(fds[1], $0.baseAddress, 1) }
                while record.count < 3 { await Task.yield() }
                return (early + (beforeThird == 2 ? 0 : 100), resumed)
            }
            #expect(early == 0)
            #expect(resumed == 5)
            #expect(record.results.withLock { $0.allSatisfy { $0 > 0 && Int16($0) & Int16(POLLIN) != 0 } })
            #expect(record.onCore.withLock { $0 == [true, true, true] })
        }
    }

    @Test("A watch completed while the core polls idle runs its handler (it is work, as a job is)", arguments: [false, true])
    func whileIdlePolling(polling: Bool) async throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        let armed = Flag()
        try await withRuntime(configure: { $0.idlePollTime = polling ? .milliseconds(200) : .zero }) { runtime in
            async let resumed = runtime.run(on: 0) { core -> Int32 in
                let handler = RecordingHandler(core: core, fd: readEnd, record: WatchRecord())
                var waiter: CoreWakeHandle?
                handler.onCall = { if let waiter { core.resume(waiter, result: 9) } }
                try core.whenReadable(readEnd, handler)
                return try await suspendOnCore(core) { waiter = $0; armed.set() }
            }
            // Written from this thread while the core has nothing to do: it polls, or it parks.
            while !armed.isSet { await Task.yield() }
            let byte: UInt8 = 1
            _ = withUnsafeBytes(of: byte) { write(writeEnd, $0.baseAddress, 1) }
            let value = try await resumed
            #expect(value == 9)
        }
    }

    @Test("A core kept busy by a task that yields still sees a readiness caused from another thread")
    func busyCoreSeesReadiness() async throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        let armed = Flag()
        let record = WatchRecord()
        try await withRuntime { runtime in
            async let spun = runtime.run(on: 0) { core -> Int in
                _ = try core.watchReadable(readEnd, RecordingHandler(core: core, fd: readEnd, record: record))
                armed.set()
                var turns = 0
                while record.count == 0 { await Task.yield(); turns += 1 }  // never idle, never parked
                return turns
            }
            while !armed.isSet { await Task.yield() }
            let byte: UInt8 = 1
            _ = withUnsafeBytes(of: byte) { write(writeEnd, $0.baseAddress, 1) }
            let turns = try await spun
            #expect(turns > 0)
        }
        #expect(record.results.withLock { $0.first.map { $0 > 0 } } == true)
    }

    @Test("Stopping the core ends a pending watch, one-shot or lasting, with ECANCELED, before stop() returns; asking again then throws shutDown", arguments: [false, true])
    func endsWhenTheCoreStops(lasting: Bool) async throws {
        let record = WatchRecord()
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let readEnd = fds[0]
        try await withRuntime { runtime in
            try await runtime.run(on: 0) { core in
                let handler = RecordingHandler(core: core, fd: readEnd, record: record)
                if lasting {
                    _ = try core.watchReadable(readEnd, handler)  // never readable: nothing is written
                } else {
                    handler.rearm = true  // asks again from its last call
                    try core.whenReadable(readEnd, handler)
                }
            }
        }
        #expect(record.results.withLock { $0 } == [-ECANCELED])
        #expect(record.rearmErrors.withLock { $0 } == (lasting ? [] : [RuntimeError.shutDown()]))  // compared by kind
    }

    @Test("A lasting watch calls its handler once per readiness without being asked again; cancelling it calls it a last time with ECANCELED, and nothing after")
    func lastingWatch() async throws {
        try await withRuntime { runtime in
            let record = WatchRecord()
            let quietAfterCancel = try await runtime.run(on: 0) { core -> Bool in
                var fds: [Int32] = [0, 0]
                guard pipe(&fds) == 0 else { return false }
                defer { close(fds[0]); close(fds[1]) }
                let handler = RecordingHandler(core: core, fd: fds[0], record: record)
                // Reads what made it readable, as a pump serves its channel; the pipe does not
                // block, so the last call (ECANCELED, nothing to read) returns at once.
                _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
                handler.onCall = {
                    var sink: UInt8 = 0
                    _ = read(fds[0], &sink, 1)
                }
                let watch = try core.watchReadable(fds[0], handler)
                for _ in 0..<50 { await Task.yield() }  // turns pass; nothing to read yet
                guard record.count == 0 else { return false }
                let byte: UInt8 = 1
                for expected in 1...3 {
                    _ = withUnsafeBytes(of: byte) { write(fds[1], $0.baseAddress, 1) }
                    while record.count < expected { await Task.yield() }
                }
                core.cancelWatch(watch)
                while record.count < 4 { await Task.yield() }
                _ = withUnsafeBytes(of: byte) { write(fds[1], $0.baseAddress, 1) }
                for _ in 0..<50 { await Task.yield() }
                return record.count == 4
            }
            #expect(quietAfterCancel)
            let results = record.results.withLock { $0 }
            #expect(results.count == 4)
            #expect(results.prefix(3).allSatisfy { $0 > 0 && Int16($0) & Int16(POLLIN) != 0 })
            #expect(results.last == -ECANCELED)
            #expect(record.onCore.withLock { $0.allSatisfy { $0 } })
        }
    }

    @Test("A watch asked for off the core's thread is refused")
    func offCore() async throws {
        try await withRuntime { runtime in
            let core = runtime.cores[0]
            let record = WatchRecord()
            var refusal: RuntimeError?
            do throws(RuntimeError) {
                try core.whenReadable(0, RecordingHandler(core: core, fd: 0, record: record))
            } catch {
                refusal = error
            }
            #expect(refusal == RuntimeError.notOnCore(""))  // compared by kind
            refusal = nil
            do throws(RuntimeError) {
                _ = try core.watchReadable(0, RecordingHandler(core: core, fd: 0, record: record))
            } catch {
                refusal = error
            }
            #expect(refusal == RuntimeError.notOnCore(""))
            #expect(record.count == 0)
        }
    }
}
