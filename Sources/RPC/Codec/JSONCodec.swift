import Foundation
public import NetTransport

/// Carries any `Codable` type as JSON: convenient, slower and larger than ``WireCodec``.
public struct JSONCodec<Value: Codable>: RPCCodec {
    public init() {}

    public func encode(_ value: Value, into payload: inout Payload) throws {
        payload.bytes.append(contentsOf: try JSONEncoder().encode(value))
    }

    public func decode(_ payload: Message) throws -> Value {
        try payload.withUnsafeBytes { raw in
            try JSONDecoder().decode(Value.self, from: Data(raw))
        }
    }
}
