public import NetRuntime
public import NetTransport
import Logging

/// The client side of one RPC connection, on the core that owns its transport: many calls at
/// once, matched to their responses by call ID in any order.
///
/// Non-Sendable: it lives on its core, like its transport. Tasks on that core share it (see
/// docs/RPC.md); tasks elsewhere reach peers through ``RPCClient``.
public final class RPCConnection<T: Transport> {
    /// The transport carrying the calls.
    public let transport: T
    /// The connection's core.
    public let core: Core
    let configuration: RPCConfiguration
    let writer: FrameWriter

    // Confined to the core's thread: no dynamic exclusivity checks on the per-call state (see TCPTransport).
    @exclusivity(unchecked) private var pending = PendingCalls()
    private let room: CoreWaitQueue
    /// Who waits for the last call in flight to end (``closeWhenIdle()``).
    private let idleWaiters: CoreWaitQueue
    @exclusivity(unchecked) private var peerLimit = Int.max
    @exclusivity(unchecked) private var peerMetadataLimit = Int.max
    @exclusivity(unchecked) private var failure: RPCError?
    @exclusivity(unchecked) private var goingAway = false
    @exclusivity(unchecked) private var lastHeard = Deadline.now
    @exclusivity(unchecked) private var unansweredPings = 0
    private var keepalive: CoreWakeHandle?
    @exclusivity(unchecked) private var scratch: [UInt8] = []
    @exclusivity(unchecked) private var helloSent = false

    /// Starts RPC on `transport`: its frames go to this connection's receive handler
    /// (``Transport/startReceiving(_:)``), which resumes each answered call with no task of its
    /// own; a task sends the hello unless a call has, and the keepalive runs in another.
    /// Call on the transport's core.
    ///
    /// - Throws: ``RuntimeError/notOnCore(_:)`` off the transport's core; the transport's
    ///   `.concurrentReceive` if something else receives on it.
    public init(_ transport: T, configuration: RPCConfiguration = .init()) throws {
        guard transport.core.isCurrent else { throw RuntimeError.notOnCore("RPCConnection off its transport's core") }
        self.transport = transport
        self.core = transport.core
        self.configuration = configuration
        self.room = CoreWaitQueue(core: transport.core)
        self.idleWaiters = CoreWaitQueue(core: transport.core)
        self.writer = FrameWriter { [unowned transport] capacity in transport.allocateBuffer(capacity: capacity) }
        // The handler holds this connection until the transport's end, which it hears last.
        try transport.startReceiving { [self] event in received(event) }
        let connection = UnsafeTransfer(self)
        Task(executorPreference: core.executor) { @concurrent in
            guard !connection.value.helloSent else { return }
            do throws(RPCError) { try await connection.value.sendHello() } catch { await connection.value.fail(error) }
        }
        if configuration.keepaliveInterval != nil {
            Task(executorPreference: core.executor) { @concurrent in await connection.value.keepaliveLoop() }
        }
    }

    /// Whether new calls may be made: open, and the server has not sent a go-away.
    public var isUsable: Bool { failure == nil && !goingAway }

    /// Whether the server has said it is shutting down.
    public var isGoingAway: Bool { goingAway }

    /// Calls waiting for their response.
    public var pendingCount: Int { pending.count }

    /// How many calls may be in flight on this connection now: the smaller of this side's
    /// ``RPCConfiguration/maximumConcurrentCalls`` and the server's.
    var callLimit: Int { min(configuration.maximumConcurrentCalls, peerLimit) }

    /// Calls `method` with `request` and returns its response.
    ///
    /// - Throws: ``RPCError``: the server's status, or `.deadlineExceeded`, `.cancelled` (the
    ///   task was cancelled: a cancel frame tells the server), `.connectionLost`, `.unavailable`
    ///   (go-away), `.resourceExhausted` (full, with ``RPCConfiguration/failFastWhenFull``),
    ///   `.undecodable` (the response).
    public func call<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, options: RPCCallOptions = .init()
    ) async throws(RPCError) -> Response {
        let id = try await begin(method, request, options: options, kind: .request)
        return try decode(method, try await wait(id, deadline: options.deadline, cancellable: options.cancellable))
    }

    func decode<Request, Response>(_ method: RPCMethod<Request, Response>, _ response: Message) throws(RPCError) -> Response {
        do {
            return try method.responseCodec.decode(response)
        } catch {
            throw RPCError(.undecodable, "\(method.name): the response could not be decoded: \(error)")
        }
    }

    /// Sends a one-way message: no response, no error from the handler.
    public func notify<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, options: RPCCallOptions = .init()
    ) async throws(RPCError) {
        _ = try await begin(method, request, options: options, kind: .oneWay)
    }

    /// Closes the connection: pending calls fail with ``RPCError/Code/connectionLost``.
    public func close() async {
        await fail(RPCError(.connectionLost, "the connection was closed"))
    }

    /// Whether calls are waiting for their responses.
    public var hasWorkInFlight: Bool { pending.count > 0 }

    /// Closes the connection once no call waits for its response (at once if none does): how
    /// a pool retires a connection that may still be in use. Calls made meanwhile delay it.
    public func closeWhenIdle() async {
        while pending.count > 0 && failure == nil {
            // A wait that fails (the core is stopping) ends the wait for idleness: close now.
            do { try await idleWaiters.wait() } catch { break }
        }
        await close()
    }

    /// A call's slot is free again: a caller waiting for room may go, and a close waiting for
    /// the last call may too.
    @inline(__always)
    private func callEnded() {
        room.signalOne()
        if pending.count == 0 && !idleWaiters.isEmpty { idleWaiters.signalAll() }
    }

    // MARK: Calls

    @inline(__always)  // once per call: inlined, it takes no async frame of its own
    func begin<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, options: RPCCallOptions, kind: FrameKind
    ) async throws(RPCError) -> UInt64 {
        if let failure { throw failure }
        if goingAway { throw RPCError(.unavailable, "the server is shutting down (go-away)") }
        try options.metadata.validate(maximumBytes: min(configuration.maximumMetadataBytes, peerMetadataLimit))
        if !helloSent { try await sendHello() }
        let limit = callLimit
        while kind == .request && pending.count >= limit {
            if configuration.failFastWhenFull {
                throw RPCError(.resourceExhausted, "\(limit) calls in flight on this connection")
            }
            do { try await room.wait(deadline: options.deadline) } catch { throw Self.waitError(error) }
            if let failure { throw failure }
        }
        var payload = Payload(reusing: scratch)
        do {
            try method.requestCodec.encode(request, into: &payload)
        } catch {
            throw RPCError(.undecodable, "\(method.name): the request could not be encoded: \(error)")
        }
        let body = payload.message { transport.allocateBuffer(capacity: $0) }
        scratch = payload.bytes
        var timeout: UInt64?
        if let deadline = options.deadline {
            let now = Deadline.now  // read once: a second read could pass the deadline
            guard now < deadline else { throw RPCError(.deadlineExceeded, "the deadline passed before the call was sent") }
            timeout = deadline.nanoseconds - now.nanoseconds
        }
        let id = kind == .request ? pending.begin() : pending.nextOneWayID()
        let head = writer.call(
            kind, callID: id, method: options.byName ? .name(method.name) : .id(method.id),
            timeoutNanoseconds: timeout, metadata: options.metadata)
        do {
            // Queued at once when the transport has room: no suspension, no async frame.
            if try !transport.trySend(head, body) { try await transport.send(head, body) }
        } catch {
            if kind == .request {
                pending.remove(id)
                callEnded()
            }
            if let error = error as? TransportError, error.code == .frameTooLarge {  // nothing was sent: the connection carries on
                throw RPCError(.resourceExhausted, "the request is larger than the connection carries (\(error.message))")
            }
            if error is CancellationError { throw RPCError(.cancelled, "cancelled while the request waited for room to be sent") }
            throw RPCError(.connectionLost, "the request could not be sent: \(error)")
        }
        return id
    }

    @inline(__always)
    func wait(_ id: UInt64, deadline: Deadline?, cancellable: Bool) async throws(RPCError) -> Message {
        if !pending.isAnswered(id) {
            // The request leaves now if nothing else would run before the turn's end: the
            // suspension below is then not on the round trip.
            if !core.hasQueuedJobs { transport.flush() }
            do {
                _ = try await suspendOnCore(core, deadline: deadline, cancellable: cancellable) { handle in pending.setHandle(id, handle) }
            } catch {
                if !pending.isAnswered(id) {
                    pending.remove(id)
                    callEnded()
                    let failure = Self.waitError(error)
                    if failure.code == .deadlineExceeded || failure.code == .cancelled {
                        // Tell the server to stop working on it; the response, if any, is ignored.
                        try? await transport.send(writer.bare(.cancel, callID: id))
                    }
                    throw failure
                }
            }
        }
        let call = pending.remove(id)
        callEnded()
        guard let call else { throw RPCError(.connectionLost, "the connection ended") }
        if let response = call.response { return response }
        throw call.error ?? RPCError(.unknown, "no response")
    }

    private static func waitError(_ error: any Error) -> RPCError {
        switch error {
        case let error as IOError where error.isTimeout: RPCError(.deadlineExceeded, "the deadline passed")
        case is CancellationError: RPCError(.cancelled, "the call was cancelled")
        default: RPCError(.connectionLost, "\(error)")
        }
    }

    // MARK: Reading

    /// The hello goes first, before any call: whichever of the connection's start-up task and
    /// the first caller runs first sends it (the transport keeps the order in which frames are
    /// sent). Callers check `helloSent` first, so a call pays no async call once it has gone.
    private func sendHello() async throws(RPCError) {
        helloSent = true
        let limits = HelloLimits(
            maximumConcurrentCalls: UInt32(clamping: configuration.maximumConcurrentCalls),
            maximumMetadataBytes: UInt32(clamping: configuration.maximumMetadataBytes))
        do {
            try await transport.send(writer.hello(limits))
        } catch {
            throw RPCError(.connectionLost, "the hello could not be sent: \(error)")
        }
    }

    /// The transport's receive handler: answers resume their calls; the end fails the rest.
    private func received(_ event: ReceiveEvent) {
        guard case .message(let message) = event else {
            if case .ended(let error) = event { failSoon(RPCError(.connectionLost, "the connection ended: \(error)")) }
            return
        }
        guard failure == nil else { return }
        lastHeard = .coarseNow  // keepalive precision is milliseconds; this read costs no system call
        unansweredPings = 0
        let frame: RPCFrame
        do {
            frame = try RPCFrame.parse(message, maximumMetadataBytes: configuration.maximumMetadataBytes)
        } catch {
            if error.fatal { failSoon(RPCError(.connectionLost, "the server broke the protocol: \(error.error.message)")) }
            return
        }
        switch frame.kind {
        case .response:
            complete(frame.callID) { $0.response = frame.payload }
        case .error:
            let status = frame.status ?? RPCError(.unknown, "")
            if frame.callID == 0 {
                failSoon(RPCError(.connectionLost, "the server closed the connection: \(status)"))
            } else {
                complete(frame.callID) { $0.error = status }
            }
        case .goAway:
            goingAway = true
            configuration.logger.debug("rpc: go-away", metadata: ["peer": "\(transport.peerAddress.map { "\($0)" } ?? "?")"])
        case .hello:
            if let limits = frame.helloLimits {
                peerLimit = max(Int(limits.maximumConcurrentCalls), 1)
                peerMetadataLimit = Int(limits.maximumMetadataBytes)
            }
        case .ping:
            // A pong that finds no room is dropped: the server's keepalive only needs to hear
            // something, and this side's answers (or the next pong) will do.
            try? transport.enqueue(writer.bare(.pong, callID: frame.callID))
        case .pong, .request, .oneWay, .cancel:
            break
        }
    }

    private func complete(_ id: UInt64, _ body: (inout PendingCall) -> Void) {
        // An unknown ID is a call that was cancelled or timed out: its response is dropped.
        if let handle = pending.answer(id, body) { core.resume(handle) }
    }

    /// Ends the connection with `error`: every pending call fails with it at once.
    private func fail(_ error: RPCError) async {
        if failNow(error) { await transport.close() }
    }

    /// ``fail(_:)`` from the receive handler, which cannot wait: the calls fail now, the
    /// transport closes in a task.
    private func failSoon(_ error: RPCError) {
        guard failNow(error) else { return }
        let transport = UnsafeTransfer(transport)
        Task(executorPreference: core.executor) { @concurrent in await transport.value.close() }
    }

    /// Fails every pending call with `error`, unless the connection has already failed.
    private func failNow(_ error: RPCError) -> Bool {
        guard failure == nil else { return false }
        failure = error
        for id in pending.ids { complete(id) { $0.error = error } }
        room.signalAll()
        idleWaiters.signalAll()
        if let keepalive { core.resume(keepalive) }
        return true
    }

    // MARK: Keepalive

    private func keepaliveLoop() async {
        guard let interval = configuration.keepaliveInterval else { return }
        var pingID: UInt64 = 0
        while failure == nil {
            let wake = max(lastHeard + interval, Deadline.now + .milliseconds(1))
            do {
                _ = try await suspendOnCore(core, deadline: wake) { keepalive = $0 }
            } catch let error as IOError where error.isTimeout {
            } catch {
                break
            }
            keepalive = nil
            guard failure == nil else { break }
            guard (lastHeard + interval).hasPassed else { continue }
            if unansweredPings >= configuration.keepaliveAllowedMisses {
                configuration.logger.info("rpc: keepalive: the peer stopped answering", metadata: ["peer": "\(transport.peerAddress.map { "\($0)" } ?? "?")"])
                await fail(RPCError(.connectionLost, "the peer did not answer \(unansweredPings) pings"))
                break
            }
            unansweredPings += 1
            pingID &+= 1
            lastHeard = .now  // the next ping after another interval of silence
            try? await transport.send(writer.bare(.ping, callID: pingID))
        }
    }
}
