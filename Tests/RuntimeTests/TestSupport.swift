#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
import NetTestSupport
import Synchronization
import Testing

/// A flag one thread sets and another reads.
final class Flag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

/// Whether the tests run under the epoll backend.
var isEpoll: Bool {
    getenv("NET_RUNTIME_BACKEND").map { String(cString: $0) } == "epoll"
}

/// A non-Sendable object, of the kind a connection is: the compiler keeps it on its core.
final class CoreLocalCounter {
    var value = 0
    let thread = Core.currentThreadID
}

/// Writes all of `bytes` to a non-blocking descriptor from the calling thread.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EAGAIN { continue }
            throw IOError(code: errno, operation: .send)
        }
        offset += n
    }
}

/// Waits until core `index` has at least `count` operations pending, by yielding on the core.
func waitForPending(_ runtime: Runtime, core index: Int = 0, atLeast count: Int) async throws {
    try await runtime.run(on: index) { core in
        while core.statistics.pendingOperations < count {
            await Task.yield()
        }
    }
}

/// Heap memory at a stable address, for operations whose buffers must outlive an await (an
/// array's `withUnsafeBytes` cannot span one). The transports' pooled buffers play this role in
/// real code; the runtime itself knows no buffer type.
final class RawBuffer {
    let bytes: UnsafeMutableRawBufferPointer

    init(count: Int) {
        bytes = .allocate(byteCount: max(count, 1), alignment: 16)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
    }

    convenience init(_ array: [UInt8]) {
        self.init(count: array.count)
        bytes.copyBytes(from: array)
    }

    var readable: UnsafeRawBufferPointer { UnsafeRawBufferPointer(bytes) }

    func prefix(_ count: Int) -> [UInt8] { Array(bytes.prefix(count)) }

    deinit { bytes.deallocate() }
}
