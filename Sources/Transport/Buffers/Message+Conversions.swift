extension Message {
    /// A message holding a copy of `bytes`, in storage of its own.
    public init(_ bytes: some Collection<UInt8>) {
        guard !bytes.isEmpty else {
            self.init()
            return
        }
        let storage = BufferStorage(allocating: bytes.count)
        UnsafeMutableRawBufferPointer(start: storage.base, count: bytes.count).copyBytes(from: bytes)
        self.init(storage: storage, offset: 0, count: bytes.count)
    }

    /// A message holding the UTF-8 bytes of `string`.
    public init(_ string: String) {
        var string = string
        self = string.withUTF8 { Message(UnsafeRawBufferPointer($0)) }
    }

    /// A copy of the bytes.
    public var bytes: [UInt8] {
        withUnsafeBytes { Array($0) }
    }
}

extension String {
    /// The message's bytes decoded as UTF-8 (invalid sequences replaced).
    public init(_ message: Message) {
        self = message.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
    }
}

extension Message: RandomAccessCollection {
    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(position: Int) -> UInt8 {
        precondition(position >= 0 && position < count, "index out of range")
        return storage!.base.load(fromByteOffset: offset + position, as: UInt8.self) // '!': count > 0
    }

    public subscript(bounds: Range<Int>) -> Message { slice(bounds) }
}

extension Message: Equatable {
    /// Messages are equal when their bytes are.
    public static func == (lhs: Message, rhs: Message) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return lhs.withUnsafeBytes { a in
            rhs.withUnsafeBytes { b in
                a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0
            }
        }
    }
}

extension Message: Hashable {
    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

extension Message: CustomStringConvertible {
    public var description: String { "Message(\(count) bytes)" }
}

#if canImport(Glibc)
import Glibc
#endif
