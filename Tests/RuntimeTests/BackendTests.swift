#if canImport(Glibc)
import Glibc
#endif
import CURing
import NetRuntime
import NetTestSupport
import Testing

@Suite("Backends", .timeLimit(.minutes(1)))
struct BackendTests {
    @Test("The io_uring ring is probed: its sizes and opcodes are known")
    func probe() async throws {
        try await withRuntime(ringEntries: 64) { runtime in
            let features = try await runtime.run(on: 0) { core in core.uringFeatures }
            if isEpoll {
                #expect(features == nil)
                #expect(runtime.backendName == "epoll")
                return
            }
            let f = try #require(features)
            #expect(runtime.backendName == "io_uring")
            #expect(f.submissionEntries == 64)
            #expect(f.completionEntries >= 128)
            #expect(f.supports(opcode: IORING_OP_NOP.rawValue))
            #expect(f.supports(opcode: IORING_OP_RECV.rawValue))
            #expect(!f.supports(opcode: 10_000))
        }
    }

    @Test("An explicit epoll runtime carries bytes like the io_uring one")
    func explicitEpoll() async throws {
        let runtime = try Runtime(configuration: .defaults {
            $0.coreCount = 1
            $0.backend = .epoll
        })
        #expect(runtime.backendName == "epoll")
        let ok = try await runtime.run(on: 0) { core in
            let (a, b) = try Socket.pair()
            let message = Array("through epoll".utf8)
            async let got: [UInt8] = {
                let buffer = RawBuffer(count: 64)
                let n = try await core.recv(b, into: buffer.bytes)
                return buffer.prefix(n)
            }()
            // Send only once the recv waits, so epoll's wait path carries it.
            while core.statistics.pendingOperations == 0 { await Task.yield() }
            let out = RawBuffer(message)
            try await core.sendAll(a, out.readable)
            let received = try await got
            try await core.close(a)
            try await core.close(b)
            return received == message
        }
        await runtime.stop()
        #expect(ok)
    }
}
