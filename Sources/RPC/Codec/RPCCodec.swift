public import NetTransport

/// Turns values into payloads and back. A method names one codec for its request and one for its
/// response; the RPC layer knows nothing else about the types.
public protocol RPCCodec<Value>: Sendable {
    /// The value type.
    associatedtype Value

    /// Encodes `value` into `payload`.
    func encode(_ value: Value, into payload: inout Payload) throws

    /// Decodes a received payload (a slice of the received frame).
    func decode(_ payload: Message) throws -> Value
}

/// A payload being built: bytes appended by a codec, or a whole message passed through as it
/// is (no copy).
public struct Payload {
    /// Bytes appended so far (ignored when `message` is set).
    public var bytes: [UInt8]
    /// A ready message to send as it is.
    public var message: Message?

    /// An empty payload; `bytes` keeps the capacity it is given.
    public init(reusing bytes: [UInt8] = []) {
        self.bytes = bytes
        self.bytes.removeAll(keepingCapacity: true)
        self.message = nil
    }

    /// The payload as a message in `transport`'s buffers (one copy of `bytes`, none of `message`).
    func message(in allocate: (Int) -> WritableBuffer) -> Message {
        if let message { return message }
        if bytes.isEmpty { return Message() }
        var buffer = allocate(bytes.count)
        bytes.withUnsafeBytes { buffer.append($0) }
        return buffer.freeze()
    }
}

/// Passes a ``Message`` through untouched: the raw-bytes path (an echo returns the request's own
/// bytes, which are a slice of the received frame).
public struct RawCodec: RPCCodec {
    public init() {}
    public func encode(_ value: Message, into payload: inout Payload) { payload.message = value }
    public func decode(_ payload: Message) -> Message { payload }
}

/// The compact binary codec of ``WireCodable`` (docs/PROTOCOL.md, "Wire codec").
public struct WireCodec<Value: WireCodable>: RPCCodec {
    public init() {}

    public func encode(_ value: Value, into payload: inout Payload) {
        var encoder = WireEncoder(bytes: payload.bytes)
        payload.bytes = []  // hand the storage over without a copy
        value.encode(to: &encoder)
        payload.bytes = encoder.bytes
    }

    public func decode(_ payload: Message) throws -> Value {
        var decoder = WireDecoder(payload)
        let value = try Value(from: &decoder)
        guard decoder.isAtEnd else { throw WireDecodingError.trailingBytes(decoder.remaining) }
        return value
    }
}
