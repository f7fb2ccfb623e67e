import NetRPC
import NetTransport

/// The cluster's one method: raw bytes echoed back without a copy.
enum EchoAPI {
    static let echo = RPCMethod<Message, Message>.raw(id: 1, name: "Echo.echo")
}

/// Every node serves it.
struct EchoService: RPCService {
    func register(into handlers: inout RPCHandlers) {
        handlers.register(EchoAPI.echo) { payload, _ in payload }
    }
}
