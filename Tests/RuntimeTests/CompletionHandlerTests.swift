#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
import NetTestSupport
import Testing

/// Records a receive's completion and resumes the task that waits for it.
private final class ReceiveRecord: CoreCompletionHandler {
    let core: Core
    var results: [Int32] = []
    var onCore: [Bool] = []
    var waiter: CoreWakeHandle?

    init(core: Core) { self.core = core }

    func coreOperationCompleted(_ result: Int32) {
        results.append(result)
        onCore.append(core.isCurrent)
        if let waiter { core.resume(waiter) }
    }

    /// Waits until the handler has been called `count` times in all.
    func wait(forCalls count: Int) async throws {
        while results.count < count {
            _ = try await suspendOnCore(core, deadline: .now + .seconds(10)) { waiter = $0 }
            waiter = nil
        }
    }
}

@Suite("Operations completed into a handler", .timeLimit(.minutes(1)))
struct CompletionHandlerTests {
    @Test("Core.receive calls its handler once, on the core, with the bytes read, 0 at end of stream, -ETIMEDOUT past its deadline and -ECANCELED when cancelled")
    func receiveIntoHandler() async throws {
        try await withRuntime { runtime in
            let (results, onCore, bytes) = try await runtime.run(on: 0) { core -> ([Int32], [Bool], [UInt8]) in
                var fds: [Int32] = [0, 0]
                guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0 else { return ([], [], []) }
                defer { close(fds[0]) }
                let record = ReceiveRecord(core: core)
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)
                defer { buffer.deallocate() }

                try core.receive(fds[0], into: buffer, then: record)
                _ = [UInt8]([7, 8, 9]).withUnsafeBytes { write(fds[1], $0.baseAddress, 3) }
                try await record.wait(forCalls: 1)
                let bytes = Array(buffer.prefix(3))

                try core.receive(fds[0], into: buffer, deadline: .now + .milliseconds(20), then: record)
                try await record.wait(forCalls: 2)

                try core.receive(fds[0], into: buffer, then: record)
                try core.cancelOperations(on: fds[0])
                try await record.wait(forCalls: 3)

                try core.receive(fds[0], into: buffer, then: record)
                close(fds[1])
                try await record.wait(forCalls: 4)
                return (record.results, record.onCore, bytes)
            }
            #expect(results == [3, -ETIMEDOUT, -ECANCELED, 0])
            #expect(onCore == [true, true, true, true])
            #expect(bytes == [7, 8, 9])
        }
    }

    @Test("Core.receive off the core's thread throws notOnCore")
    func receiveOffCore() async throws {
        try await withRuntime { runtime in
            let core = runtime.cores[0]
            final class Ignore: CoreCompletionHandler { func coreOperationCompleted(_ result: Int32) {} }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
            defer { buffer.deallocate() }
            var refused = false
            do throws(RuntimeError) { try core.receive(0, into: buffer, then: Ignore()) } catch { refused = error == .notOnCore("") }
            #expect(refused)
        }
    }
}
