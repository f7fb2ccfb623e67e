public import NetTransport

/// A service: a Swift type whose methods are registered with a server.
///
/// ```swift
/// struct EchoService: RPCService {
///     func register(into handlers: inout RPCHandlers) {
///         handlers.register(Echo.echo) { text, context in text }
///     }
/// }
/// ```
public protocol RPCService: Sendable {
    /// Registers every method's handler.
    func register(into handlers: inout RPCHandlers)
}

/// A type-erased handler: decodes the request, runs the user's code, encodes the response.
public struct RPCHandler: Sendable {
    /// The method's numeric ID.
    public let id: UInt32
    /// The method's name.
    public let name: String
    /// Runs one call: `payload` in, `response` filled.
    public let run: @Sendable (_ payload: Message, _ context: RPCContext, _ response: inout Payload) async throws(RPCError) -> Void
}

/// The handlers of a server, by method ID and by name.
public struct RPCHandlers: Sendable {
    var byID: [UInt32: RPCHandler] = [:]
    var byName: [String: RPCHandler] = [:]

    /// An empty set.
    public init() {}

    /// Registers `body` as the handler of `method`. It runs on the core that owns the connection;
    /// a thrown ``RPCError`` reaches the caller as it is, any other error as
    /// ``RPCError/Code/handlerError`` with the error's description.
    public mutating func register<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ body: @escaping @Sendable (Request, RPCContext) async throws -> Response
    ) {
        let handler = RPCHandler(id: method.id, name: method.name) { payload, context, response throws(RPCError) in
            let request: Request
            do {
                request = try method.requestCodec.decode(payload)
            } catch {
                throw RPCError(.undecodable, "\(method.name): the request could not be decoded: \(error)")
            }
            let result: Response
            do {
                result = try await body(request, context)
            } catch let error as RPCError {
                throw error
            } catch is CancellationError {
                throw RPCError(.cancelled, "\(method.name) was cancelled")
            } catch {
                throw RPCError(.handlerError, "\(error)")
            }
            do {
                try method.responseCodec.encode(result, into: &response)
            } catch {
                throw RPCError(.handlerError, "\(method.name): the response could not be encoded: \(error)")
            }
        }
        precondition(byID[method.id] == nil, "method ID \(method.id) registered twice")
        byID[method.id] = handler
        byName[method.name] = handler
    }

    /// The handler a request names.
    func handler(for key: MethodKey) -> RPCHandler? {
        switch key {
        case .id(let id): byID[id]
        case .name(let name): byName[name]
        }
    }
}
