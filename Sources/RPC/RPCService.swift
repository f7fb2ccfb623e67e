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
    /// The same call run synchronously, for a handler registered with
    /// ``RPCHandlers/registerInline(_:_:)``; `nil` for one that may suspend. The server runs it
    /// in the connection's read loop, with no task of its own.
    public let runInline: (@Sendable (_ payload: Message, _ context: RPCContext, _ response: inout Payload) throws(RPCError) -> Void)?
}

/// The handlers of a server, by method ID and by name.
public struct RPCHandlers: Sendable {
    var byID: [UInt32: RPCHandler] = [:]
    var byName: [String: RPCHandler] = [:]

    /// An empty set.
    public init() {}

    /// Registers `body` as the handler of `method`. Each call runs in a task on the core that
    /// owns the connection (workers are reused: no task is created per call), so the handler may
    /// await anything; the call's deadline or the caller's cancel cancels that task. A thrown
    /// ``RPCError`` reaches the caller as it is, any other error as
    /// ``RPCError/Code/handlerError`` with the error's description.
    public mutating func register<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ body: @escaping @Sendable (Request, RPCContext) async throws -> Response
    ) {
        add(RPCHandler(id: method.id, name: method.name, run: { payload, context, response throws(RPCError) in
            let request = try Self.decode(method, payload)
            let result: Response
            do {
                result = try await body(request, context)
            } catch {
                throw Self.handlerError(error, method.name)
            }
            try Self.encode(method, result, into: &response)
        }, runInline: nil))
    }

    /// Registers `body`, which must not suspend, as the handler of `method`: the server runs it
    /// in the connection's read loop as soon as the request is parsed, and its response leaves
    /// in the same turn. No task is involved: a short call (a lookup in memory, an echo) saves
    /// the server a hand-off to a worker and that worker's task switch (docs/RPC.md has figures).
    ///
    /// An inline handler holds up the connection's other requests while it runs, so keep it
    /// short; work that waits belongs in ``register(_:_:)``. It cannot be cancelled once
    /// started: a call whose deadline passed before it began gets
    /// ``RPCError/Code/deadlineExceeded`` without running.
    public mutating func registerInline<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ body: @escaping @Sendable (Request, RPCContext) throws -> Response
    ) {
        let inline: @Sendable (Message, RPCContext, inout Payload) throws(RPCError) -> Void = { payload, context, response throws(RPCError) in
            let request = try Self.decode(method, payload)
            let result: Response
            do {
                result = try body(request, context)
            } catch {
                throw Self.handlerError(error, method.name)
            }
            try Self.encode(method, result, into: &response)
        }
        add(RPCHandler(id: method.id, name: method.name, run: { payload, context, response throws(RPCError) in
            try inline(payload, context, &response)
        }, runInline: inline))
    }

    private mutating func add(_ handler: RPCHandler) {
        precondition(byID[handler.id] == nil, "method ID \(handler.id) registered twice")
        byID[handler.id] = handler
        byName[handler.name] = handler
    }

    private static func decode<Request, Response>(_ method: RPCMethod<Request, Response>, _ payload: Message) throws(RPCError) -> Request {
        do {
            return try method.requestCodec.decode(payload)
        } catch {
            throw RPCError(.undecodable, "\(method.name): the request could not be decoded: \(error)")
        }
    }

    private static func encode<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ result: Response, into response: inout Payload
    ) throws(RPCError) {
        do {
            try method.responseCodec.encode(result, into: &response)
        } catch {
            throw RPCError(.handlerError, "\(method.name): the response could not be encoded: \(error)")
        }
    }

    /// What the caller sees of an error the handler threw.
    private static func handlerError(_ error: any Error, _ name: String) -> RPCError {
        switch error {
        case let error as RPCError: error
        case is CancellationError: RPCError(.cancelled, "\(name) was cancelled")
        default: RPCError(.handlerError, "\(error)")
        }
    }

    /// The handler a request names.
    func handler(for key: MethodKey) -> RPCHandler? {
        switch key {
        case .id(let id): byID[id]
        case .name(let name): byName[name]
        }
    }
}
