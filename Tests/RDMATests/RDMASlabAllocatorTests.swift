@testable import NetRDMA
import NetTransport
import Testing
import NetTestSupport

/// Regions of plain memory standing in for registered ones (keys count up from 100).
final class PlainRegions {
    var made: [SlabAllocator.Region] = []
    var failNext = false
    struct Refused: Error {}

    func make(_ size: Int) throws -> SlabAllocator.Region {
        if failNext { throw Refused() }
        let region = SlabAllocator.Region(base: .allocate(byteCount: size, alignment: 4096), size: size,
                                          localKey: UInt32(100 + made.count), remoteKey: 0)
        made.append(region)
        return region
    }

    deinit { for region in made { region.base.deallocate() } }
}

@Suite("RDMA slab allocator")
struct RDMASlabAllocatorTests {
    let configuration = SlabAllocator.Configuration(sizeClasses: [256, 4096], regionSize: 16 * 1024, maximumRegionsPerClass: 2)

    @Test("Requests go to the smallest class that fits; larger than every class is refused")
    func sizeClasses() throws {
        let regions = PlainRegions()
        let slab = SlabAllocator(configuration: configuration, makeRegion: regions.make)
        #expect(try slab.allocate(1)?.size == 256)
        #expect(try slab.allocate(256)?.size == 256)
        #expect(try slab.allocate(257)?.size == 4096)
        #expect(try slab.allocate(4097) == nil)
        #expect(slab.statistics.refused == 1)
        #expect(slab.statistics.regions == 2)
        #expect(slab.sizeClasses == [256, 4096])
        let odd = SlabAllocator(configuration: .init(sizeClasses: [4096, 0, -8, 512]), makeRegion: regions.make)
        #expect(odd.sizeClasses == [512, 4096])
    }

    @Test("Chunks are disjoint, inside their region, and carry its key")
    func disjointChunks() throws {
        let regions = PlainRegions()
        let slab = SlabAllocator(configuration: configuration, makeRegion: regions.make)
        var chunks: [SlabAllocator.Chunk] = []
        // 2 regions of 16 KiB = 8 chunks of 4 KiB: all of them, then a refusal.
        for _ in 0..<8 { chunks.append(try #require(try slab.allocate(4096))) }
        #expect(try slab.allocate(4096) == nil)
        let starts = chunks.map { UInt(bitPattern: $0.base) }.sorted()
        for (a, b) in zip(starts, starts.dropFirst()) { #expect(b - a >= 4096) }
        for chunk in chunks {
            let key = try #require(slab.localKey(for: chunk.base, count: chunk.size))
            #expect(key == chunk.localKey)
        }
        #expect(Set(chunks.map(\.localKey)).count == 2)
    }

    @Test("A freed chunk is reused; a double free is refused")
    func freeAndReuse() throws {
        let regions = PlainRegions()
        let slab = SlabAllocator(configuration: configuration, makeRegion: regions.make)
        let first = try #require(try slab.allocate(100))
        #expect(slab.statistics.inUse == 1)
        #expect(slab.free(first))
        #expect(!slab.free(first))
        #expect(slab.statistics.inUse == 0)
        let again = try #require(try slab.allocate(100))
        #expect(again.base == first.base)
        #expect(regions.made.count == 1)
    }

    @Test("A chunk lent to a buffer goes back to the slab once, when its last message goes")
    func lentChunk() throws {
        let regions = PlainRegions()
        let slab = SlabAllocator(configuration: configuration, makeRegion: regions.make)
        let lender = SlabChunkLender(slab: slab)
        // Chunks from both classes and both regions of one class: the tag must find each.
        var chunks: [SlabAllocator.Chunk] = []
        for _ in 0..<5 { chunks.append(try #require(try slab.allocate(4096))) }
        chunks.append(try #require(try slab.allocate(10)))
        #expect(Set(chunks.map(\.localKey)).count == 3)
        var messages: [Message] = []
        for chunk in chunks {
            var buffer = WritableBuffer(storage: lender.storage(over: chunk))
            buffer.append(contentsOf: [1, 2, 3])
            messages.append(buffer.freeze())
        }
        let slice = messages[4].slice(1..<2)
        #expect(slab.statistics.inUse == 6)
        messages.removeAll()
        #expect(slab.statistics.inUse == 1)  // the slice still holds its chunk
        _ = consume slice
        #expect(slab.statistics.inUse == 0)
        for chunk in chunks { #expect(!slab.free(chunk)) }  // each went back exactly once
    }

    @Test("A tag that names no chunk out frees nothing")
    func bogusTags() throws {
        let regions = PlainRegions()
        let slab = SlabAllocator(configuration: configuration, makeRegion: regions.make)
        let chunk = try #require(try slab.allocate(100))
        for tag in [-1, 0 | 1, 1 << 56, 5 << 56, 1 << 32 | 0, Int.max] where tag != chunk.tag {
            #expect(!slab.free(tag: tag))
        }
        #expect(slab.statistics.inUse == 1)
        #expect(slab.free(tag: chunk.tag))
        #expect(!slab.free(tag: chunk.tag))
        #expect(slab.statistics.inUse == 0)
    }

    @Test("Addresses outside every region, or straddling its end, have no key")
    func foreignMemory() throws {
        let regions = PlainRegions()
        let slab = SlabAllocator(configuration: configuration, makeRegion: regions.make)
        let chunk = try #require(try slab.allocate(4096))
        let foreign = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
        defer { foreign.deallocate() }
        #expect(slab.localKey(for: foreign, count: 64) == nil)
        let region = regions.made[0]
        #expect(slab.localKey(for: region.base + region.size - 8, count: 16) == nil)
        #expect(slab.localKey(for: chunk.base, count: 16) != nil)
    }

    @Test("A region that cannot be made is an error, and the allocator stays usable")
    func regionFailure() throws {
        let regions = PlainRegions()
        let slab = SlabAllocator(configuration: configuration, makeRegion: regions.make)
        regions.failNext = true
        #expect(throws: PlainRegions.Refused.self) { try slab.allocate(10) }
        regions.failNext = false
        #expect(try slab.allocate(10) != nil)
    }

    @Test("Random allocate/free keeps every live chunk distinct and the counts right", arguments: [1, 7, 99] as [UInt64])
    func randomUse(seed: UInt64) throws {
        let regions = PlainRegions()
        let slab = SlabAllocator(configuration: configuration, makeRegion: regions.make)
        var random = SeededGenerator(seed: seed)
        var live: [SlabAllocator.Chunk] = []
        for _ in 0..<2_000 {
            if live.isEmpty || random.next() % 3 != 0 {
                if let chunk = try slab.allocate(Int(random.next() % 4096) + 1) { live.append(chunk) }
            } else {
                let index = Int(random.next() % UInt64(live.count))
                #expect(slab.free(live.remove(at: index)))
            }
            #expect(slab.statistics.inUse == live.count)
        }
        #expect(Set(live.map { UInt(bitPattern: $0.base) }).count == live.count)
    }
}

