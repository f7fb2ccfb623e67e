/// Per-call key/value pairs sent with a request (trace context, auth tokens). Bounded: see
/// ``RPCConfiguration/maximumMetadataBytes``; keys are at most 255 bytes of UTF-8, values at most
/// 65,535.
public struct RPCMetadata: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    /// The pairs, in the order they were added (a key may repeat).
    public var entries: [(key: String, value: String)]

    /// Empty metadata.
    public init() { entries = [] }

    public init(dictionaryLiteral elements: (String, String)...) {
        entries = elements.map { (key: $0.0, value: $0.1) }
    }

    /// The first value for `key`.
    public subscript(key: String) -> String? {
        get { entries.first { $0.key == key }?.value }
        set {
            entries.removeAll { $0.key == key }
            if let newValue { entries.append((key: key, value: newValue)) }
        }
    }

    /// Whether there are no pairs.
    public var isEmpty: Bool { entries.isEmpty }

    /// Throws ``RPCError/Code/resourceExhausted`` when a key is over 255 bytes, a value over
    /// 65,535, or the whole over `maximumBytes` (the frame could not carry it, or the peer would
    /// refuse it).
    func validate(maximumBytes: Int) throws(RPCError) {
        for (key, value) in entries where key.utf8.count > 255 || value.utf8.count > 65_535 {
            throw RPCError(.resourceExhausted, "metadata key \(key.prefix(32)): keys are at most 255 bytes, values 65,535")
        }
        guard encodedSize <= maximumBytes else {
            throw RPCError(.resourceExhausted, "metadata of \(encodedSize) bytes is over the limit of \(maximumBytes)")
        }
    }

    /// Bytes on the wire.
    var encodedSize: Int { entries.reduce(0) { $0 + 3 + $1.key.utf8.count + $1.value.utf8.count } }

    public static func == (a: RPCMetadata, b: RPCMetadata) -> Bool {
        a.entries.elementsEqual(b.entries) { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for (key, value) in entries { hasher.combine(key); hasher.combine(value) }
    }
}
