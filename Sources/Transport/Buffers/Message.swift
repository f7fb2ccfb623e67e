/// An immutable, cheaply sliceable run of bytes: what a transport sends and receives (the role
/// `Bytes` plays in the Rust crate).
///
/// A message refers to part of a ``BufferStorage``; copying or slicing a message copies no
/// bytes, and the storage goes back to its pool when the last message referring to it is gone.
/// A received frame is a message over the chunk the socket read into: no copy between the socket
/// and the application.
///
/// Messages are not Sendable: like the connections they come from, they stay on their core.
/// Send bytes to another core as `[UInt8]` (``bytes``) or in a Sendable type of your own.
public struct Message {
    @usableFromInline let storage: BufferStorage?
    @usableFromInline let offset: Int
    /// The number of bytes.
    public let count: Int

    /// The empty message.
    public init() {
        storage = nil
        offset = 0
        count = 0
    }

    /// A message over `count` bytes of `storage` from `offset`.
    public init(storage: BufferStorage, offset: Int = 0, count: Int) {
        precondition(offset >= 0 && count >= 0 && offset + count <= storage.capacity, "range outside the storage")
        self.storage = storage
        self.offset = offset
        self.count = count
    }

    /// Whether the message has no bytes.
    public var isEmpty: Bool { count == 0 }

    /// Calls `body` with the bytes, valid only during the call.
    @inlinable
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        guard let storage else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try withExtendedLifetime(storage) { () throws(E) -> R in
            try body(UnsafeRawBufferPointer(start: storage.base + offset, count: count))
        }
    }

    /// The bytes as a span, borrowed from the message.
    public var span: RawSpan {
        @_lifetime(borrow self)
        borrowing get {
            let bytes = UnsafeRawBufferPointer(start: storage.map { $0.base + offset }, count: count)
            return _overrideLifetime(RawSpan(_unsafeBytes: bytes), borrowing: self)
        }
    }

    /// The bytes from `range` (offsets within this message), sharing this message's storage.
    public func slice(_ range: Range<Int>) -> Message {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "slice outside the message")
        guard let storage, !range.isEmpty else { return Message() }
        return Message(storage: storage, offset: offset + range.lowerBound, count: range.count)
    }

    /// Whether this message's bytes lie inside `storage` (for checks that nothing was copied).
    public func isBacked(by storage: BufferStorage) -> Bool { self.storage === storage }

    /// The storage the message refers to, if any.
    public var backingStorage: BufferStorage? { storage }

    /// The address of the first byte (for I/O that must outlive a closure). Valid while the
    /// message or its storage is alive.
    public var baseAddress: UnsafeRawPointer? { storage.map { UnsafeRawPointer($0.base + offset) } }
}
