/// A buffer being filled, taken from a pool; ``freeze()`` turns it into an immutable ``Message``
/// without copying (the role `BytesMut` plays in the Rust crate).
///
/// Non-copyable, so two owners can never write the same bytes; once frozen, the bytes are shared
/// read-only by any number of messages.
public struct WritableBuffer: ~Copyable {
    /// The storage being written.
    public let storage: BufferStorage
    /// Where the buffer starts inside the storage (room reserved in front, for a header).
    public let start: Int
    /// Bytes written so far.
    public var count: Int { written }
    // Stored apart so the small writers below can be inlined into other modules.
    @usableFromInline var written: Int

    /// A buffer over `storage` from `start`, empty.
    public init(storage: BufferStorage, start: Int = 0) {
        precondition(start >= 0 && start <= storage.capacity)
        self.storage = storage
        self.start = start
        self.written = 0
    }

    /// Bytes that can still be written.
    @inlinable public var capacity: Int { storage.capacity - start }

    /// Bytes left to write.
    @inlinable public var remaining: Int { capacity - written }

    /// Appends bytes; the buffer must have room (see ``remaining``).
    @inlinable
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count <= remaining, "WritableBuffer overflow")
        if let source = bytes.baseAddress, !bytes.isEmpty {
            (storage.base + start + written).copyMemory(from: source, byteCount: bytes.count)
        }
        written += bytes.count
    }

    /// Appends bytes from a collection.
    public mutating func append(contentsOf bytes: some Collection<UInt8>) {
        precondition(bytes.count <= remaining, "WritableBuffer overflow: \(bytes.count) bytes into \(remaining)")
        let target = UnsafeMutableRawBufferPointer(start: storage.base + start + count, count: bytes.count)
        target.copyBytes(from: bytes)
        written += bytes.count
    }

    /// Appends an integer in big-endian (network) byte order.
    @inlinable
    public mutating func append<I: FixedWidthInteger>(bigEndian value: I) {
        precondition(MemoryLayout<I>.size <= remaining, "WritableBuffer overflow")
        (storage.base + start + written).storeBytes(of: value.bigEndian, as: I.self)
        written += MemoryLayout<I>.size
    }

    /// Lets `body` write into the unwritten part and returns what it returns; `body` returns
    /// how many bytes it wrote.
    public mutating func write<E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> Int) throws(E) {
        let free = UnsafeMutableRawBufferPointer(start: storage.base + start + count, count: remaining)
        let wrote = try body(free)
        precondition(wrote >= 0 && wrote <= free.count, "wrote outside the buffer")
        written += wrote
    }

    /// The bytes written so far, for reading in place.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: storage.base + start, count: count))
    }

    /// The written bytes as an immutable message sharing this buffer's storage.
    public consuming func freeze() -> Message {
        Message(storage: storage, offset: start, count: count)
    }
}
