public import NetTransport

/// A method of a service: its stable numeric ID, its name, and the codecs of its request and
/// response. Define one per method as a static constant that client and server share:
///
/// ```swift
/// enum Echo {
///     static let echo = RPCMethod<String, String>(id: 1, name: "Echo.echo")
/// }
/// ```
public struct RPCMethod<Request, Response>: Sendable {
    /// The stable numeric ID requests carry on the wire (unique within a server).
    public let id: UInt32
    /// The method's name; a request may name the method by it instead (``RPCCallOptions/byName``).
    public let name: String
    /// Encodes and decodes requests.
    public let requestCodec: any RPCCodec<Request>
    /// Encodes and decodes responses.
    public let responseCodec: any RPCCodec<Response>

    /// A method with explicit codecs.
    public init(id: UInt32, name: String, request: any RPCCodec<Request>, response: any RPCCodec<Response>) {
        self.id = id
        self.name = name
        self.requestCodec = request
        self.responseCodec = response
    }
}

extension RPCMethod where Request: WireCodable, Response: WireCodable {
    /// A method whose request and response use the compact binary codec.
    public init(id: UInt32, name: String) {
        self.init(id: id, name: name, request: WireCodec<Request>(), response: WireCodec<Response>())
    }
}

extension RPCMethod where Request == Message, Response == Message {
    /// A method that carries raw bytes both ways without a copy.
    public static func raw(id: UInt32, name: String) -> RPCMethod<Message, Message> {
        RPCMethod(id: id, name: name, request: RawCodec(), response: RawCodec())
    }
}

extension RPCMethod where Request: Codable, Response: Codable {
    /// A method whose request and response travel as JSON.
    public static func json(id: UInt32, name: String) -> RPCMethod {
        RPCMethod(id: id, name: name, request: JSONCodec<Request>(), response: JSONCodec<Response>())
    }
}
