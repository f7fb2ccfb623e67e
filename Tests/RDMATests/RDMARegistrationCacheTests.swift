@testable import NetRDMA
import NetTransport
import Testing

/// The registration cache's bookkeeping, with a fake device (runs everywhere).
@Suite("RDMA registration cache")
struct RDMARegistrationCacheTests {
    /// A fake device that counts registrations and can refuse them.
    final class FakeDevice {
        var live: Set<Int> = []
        var next = 0
        var refuse = false

        func cache(_ limits: RegistrationCache.Limits) -> RegistrationCache {
            RegistrationCache(limits: limits, register: { [self] _, _ in
                if refuse { throw TransportError(.resourceExhausted, "RLIMIT_MEMLOCK (fake)") }
                next += 1
                live.insert(next)
                return .init(keys: .init(localKey: UInt32(next), remoteKey: UInt32(next)), handle: UnsafeMutableRawPointer(bitPattern: next))
            }, deregister: { [self] registration in
                live.remove(Int(bitPattern: registration.handle))
            })
        }
    }

    @Test("A buffer is registered once and found again; distinct buffers get distinct registrations")
    func hits() throws {
        let device = FakeDevice()
        let cache = device.cache(.defaults)
        let a = BufferStorage(allocating: 1_000), b = BufferStorage(allocating: 1_000)
        let first = try cache.keys(for: a)
        #expect(try cache.keys(for: a) == first)
        #expect(try cache.keys(for: b) != first)
        #expect(cache.statistics.registrations == 2)
        #expect(cache.statistics.hits == 1)
        #expect(cache.registeredBytes == 2_000)
    }

    @Test("Past its entry or byte limit the least recently used registration goes, never a pinned one")
    func eviction() throws {
        let device = FakeDevice()
        let cache = device.cache(.init(maximumEntries: 2, maximumBytes: 10_000))
        let a = BufferStorage(allocating: 100), b = BufferStorage(allocating: 100), c = BufferStorage(allocating: 100)
        let keysA = try cache.keys(for: a)
        _ = try cache.keys(for: b)
        _ = try cache.keys(for: a)  // a is now the most recent
        _ = try cache.keys(for: c)  // b goes
        #expect(cache.count == 2)
        #expect(cache.statistics.evictions == 1)
        #expect(try cache.keys(for: a) == keysA) // still cached
        #expect(cache.statistics.registrations == 3)
        cache.pin(a)
        cache.pin(c)
        let d = BufferStorage(allocating: 100)
        _ = try cache.keys(for: d) // nothing evictable: over the limit for a while
        #expect(cache.count == 3)
        cache.unpin(c)
        let e = BufferStorage(allocating: 100)
        _ = try cache.keys(for: e) // c and d are unpinned now; the older (c) goes first
        #expect(cache.statistics.evictions >= 2)
        #expect(try cache.keys(for: a) == keysA)
        // By bytes: a buffer that needs the room of two others.
        let bytes = device.cache(.init(maximumEntries: 100, maximumBytes: 250))
        _ = try bytes.keys(for: BufferStorage(allocating: 100))
        _ = try bytes.keys(for: BufferStorage(allocating: 100))
        _ = try bytes.keys(for: BufferStorage(allocating: 200))
        #expect(bytes.registeredBytes == 200)
        #expect(bytes.statistics.evictions == 2)
    }

    @Test("A refused registration is an error and counted; a buffer larger than the cache is refused; removeAll deregisters everything")
    func failures() throws {
        let device = FakeDevice()
        let cache = device.cache(.init(maximumEntries: 10, maximumBytes: 1_000))
        #expect(throws: TransportError.self) { try cache.keys(for: BufferStorage(allocating: 1_001)) }
        device.refuse = true
        let refused = #expect(throws: TransportError.self) { try cache.keys(for: BufferStorage(allocating: 10)) }
        #expect(refused?.message.contains("RLIMIT_MEMLOCK") == true)
        #expect(cache.statistics.failures == 2)
        device.refuse = false
        let kept = BufferStorage(allocating: 10)
        _ = try cache.keys(for: kept)
        cache.pin(kept)
        #expect(device.live.count == 1)
        cache.removeAll()
        #expect(device.live.isEmpty)
        #expect(cache.registeredBytes == 0)
    }
}
