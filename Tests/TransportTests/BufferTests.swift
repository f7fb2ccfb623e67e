import NetTransport
import Testing

@Suite("Buffers")
struct BufferTests {
    @Test("A writable buffer freezes into a message over the same storage, without a copy")
    func freeze() {
        let pool = PooledBufferAllocator()
        var buffer = pool.allocate(capacity: 100)
        buffer.append(contentsOf: Array("hello ".utf8))
        buffer.append(bigEndian: UInt16(0x4142))
        let storage = buffer.storage
        let message = buffer.freeze()
        #expect(message.count == 8)
        #expect(message.isBacked(by: storage))
        #expect(String(message) == "hello AB")
        #expect(message.bytes == Array("hello AB".utf8))
    }

    @Test("Slices share storage; equality and hashing follow the bytes")
    func slices() {
        let message = Message("swift-net")
        let slice = message.slice(6..<9)
        #expect(String(slice) == "net")
        #expect(slice.isBacked(by: message.backingStorage!))
        #expect(slice == Message("net"))
        #expect(Set([slice, Message("net")]).count == 1)
        #expect(message[0] == UInt8(ascii: "s"))
        #expect(Array(message[6..<9]) == Array("net".utf8))
        #expect(Message().isEmpty && Message([UInt8]()).isEmpty)
    }

    @Test("A span borrows the bytes")
    func span() {
        let message = Message("span")
        let bytes = message.span
        #expect(bytes.byteCount == 4)
        #expect(bytes.unsafeLoad(fromByteOffset: 0, as: UInt8.self) == UInt8(ascii: "s"))
    }

    @Test("Storage returns to its pool when no one holds it: no new storage at steady state")
    func reuse() {
        let pool = PooledBufferAllocator()
        for _ in 0..<1_000 {
            var buffer = pool.allocate(capacity: 64)
            buffer.append(contentsOf: [1, 2, 3])
            let message = buffer.freeze()
            #expect(message.count == 3)
        }
        #expect(pool.statistics.created == 1)
        #expect(pool.statistics.reused == 999)
        // Held messages keep their storage out of the pool.
        var held: [Message] = []
        for i in 0..<10 {
            var buffer = pool.allocate(capacity: 64)
            buffer.append(contentsOf: [UInt8(i)])
            held.append(buffer.freeze())
        }
        #expect(pool.statistics.created == 10)
        #expect(held.enumerated().allSatisfy { $0.element.bytes == [UInt8($0.offset)] })
        held.removeAll()
        _ = pool.allocate(capacity: 64)
        #expect(pool.statistics.created == 10)
    }

    @Test("Sizes above every class get storage of their own; full classes stop pooling")
    func unpooled() {
        let pool = PooledBufferAllocator(configuration: .init(sizeClasses: [64], maximumPerClass: { _ in 2 }))
        let big = pool.allocate(capacity: 1_000)
        #expect(big.capacity == 1_000)
        let a = pool.allocate(capacity: 10)
        let b = pool.allocate(capacity: 10)
        let c = pool.allocate(capacity: 10)
        #expect(a.capacity == 64 && b.capacity == 64 && c.capacity == 64)
        #expect(pool.pooledCount == 2)
        #expect(pool.statistics.unpooled == 2)
    }

    @Test("A backed pool keeps what its backing makes up to each class's maximum, and reuses it")
    func backedPool() {
        final class Backing: BufferStorageOwner {
            var made = 0, returned = 0, refuse = false
            let memory = UnsafeMutableRawPointer.allocate(byteCount: 64 * 16, alignment: 64)
            func make(_ size: Int) -> BufferStorage? {
                if refuse { return nil }
                defer { made += 1 }
                return BufferStorage(wrapping: memory + made * 64, capacity: size, owner: self, tag: made)
            }
            func storageReleased(_ base: UnsafeMutableRawPointer, tag: Int) { returned += 1 }
            deinit { memory.deallocate() }
        }
        let backing = Backing()
        do {
            let pool = PooledBufferAllocator(configuration: .init(sizeClasses: [64], maximumPerClass: { _ in 2 }), backing: backing.make)
            let first = pool.allocate(capacity: 10)
            let base = first.storage.base
            let second = pool.allocate(capacity: 10)
            // Past the maximum: made by the backing, not kept, given back when dropped.
            let third = pool.allocate(capacity: 10)
            #expect(backing.made == 3)
            #expect(pool.pooledCount == 2)
            _ = consume third
            #expect(backing.returned == 1)
            // A kept one that no one holds is handed out again: nothing new is made.
            _ = consume first
            let again = pool.allocate(capacity: 10)
            #expect(again.storage.base == base)
            #expect(backing.made == 3)
            #expect(pool.statistics.reused == 1)
            _ = consume again
            _ = consume second
            // A backing that cannot make storage leaves the buffer plain memory.
            backing.refuse = true
            let fourth = pool.allocate(capacity: 10)  // a kept one is free: reused, no backing
            #expect(fourth.capacity == 64 && backing.made == 3)
            let held = pool.allocate(capacity: 10)
            let plain = pool.allocate(capacity: 10)  // both kept are held, backing refuses: plain
            #expect(plain.capacity == 64 && backing.made == 3)
            #expect(backing.returned == 1)  // the pool still keeps its two
            _ = consume fourth
            _ = consume held
            _ = consume plain
        }
        #expect(backing.returned == 3)  // the pool went: its kept storage went back too
    }

    @Test("Storage a backing makes smaller than its class is not used: the buffer gets plain memory of the class's size")
    func undersizedBacking() {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64)
        defer { memory.deallocate() }
        var offered = 0
        let pool = PooledBufferAllocator(configuration: .init(sizeClasses: [256], maximumPerClass: { _ in 4 })) { _ in
            offered += 1
            return BufferStorage(wrapping: memory, capacity: 64) {}
        }
        let buffer = pool.allocate(capacity: 200)
        #expect(offered == 1)
        #expect(buffer.capacity == 256)
        #expect(buffer.storage.base != memory)
        #expect(pool.pooledCount == 0)
        #expect(pool.statistics.unpooled == 1)
    }

    @Test("Wrapped memory runs its release action when the last message goes")
    func wrapped() {
        final class Flag { var released = false }
        let flag = Flag()
        let memory = UnsafeMutableRawPointer.allocate(byteCount: 16, alignment: 16)
        do {
            let storage = BufferStorage(wrapping: memory, capacity: 16) { flag.released = true }
            let message = Message(storage: storage, offset: 2, count: 4)
            #expect(message.count == 4)
            #expect(!flag.released)
        }
        #expect(flag.released)
        memory.deallocate()
    }

    @Test("Memory lent by an owner goes back to it once, with its tag, when the last message goes")
    func lentByOwner() {
        final class Owner: BufferStorageOwner {
            var returned: [(UnsafeMutableRawPointer, Int)] = []
            func storageReleased(_ base: UnsafeMutableRawPointer, tag: Int) { returned.append((base, tag)) }
        }
        let owner = Owner()
        let memory = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
        defer { memory.deallocate() }
        var first: Message? = Message(storage: BufferStorage(wrapping: memory, capacity: 64, owner: owner, tag: 7), offset: 0, count: 64)
        var second: Message? = first?.slice(8..<16)
        #expect(second?.count == 8)
        first = nil
        #expect(owner.returned.isEmpty)  // the slice still refers to it
        second = nil
        #expect(owner.returned.count == 1)
        #expect(owner.returned.first?.0 == memory)
        #expect(owner.returned.first?.1 == 7)
        // A negative capacity is taken as none: a buffer over it is empty, and nothing traps.
        let empty = WritableBuffer(storage: BufferStorage(wrapping: memory, capacity: -5, owner: owner, tag: 8))
        #expect(empty.capacity == 0)
        _ = consume empty
        #expect(owner.returned.last?.1 == 8)
    }
}
