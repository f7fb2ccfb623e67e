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
    @exclusivity(unchecked) private var peerLimit = Int.max
    @exclusivity(unchecked) private var peerMetadataLimit = Int.max
    @exclusivity(unchecked) private var failure: RPCError?
    @exclusivity(unchecked) private var goingAway = false
    @exclusivity(unchecked) private var lastHeard = Deadline.now
    @exclusivity(unchecked) private var unansweredPings = 0
    private var keepalive: CoreWakeHandle?
    @exclusivity(unchecked) private var scratch: [UInt8] = []
    @exclusivity(unchecked) private var helloSent = false
    /// Whether the reader has resumed a call since it last waited for a frame.
    @exclusivity(unchecked) private var resumedCalls = false
    /// Who may receive now. The only call in flight reads its response itself when nobody else
    /// reads (see ``wait(_:deadline:cancellable:)``); the reader task reads otherwise.
    @exclusivity(unchecked) private var readRight = ReadRight.free
    /// The reader task while it waits for a caller to give the right back.
    private var parkedReader: CoreWakeHandle?
    /// Wakes the reader at the turn's end if nobody reads by then.
    private lazy var readerCheck = TurnEndCheck { [weak self] in
        guard let self else { return }
        self.readerCheckScheduled = false
        if self.readRight == .free { self.wakeReader() }
    }
    @exclusivity(unchecked) private var readerCheckScheduled = false

    /// Starts RPC on `transport` (sends the hello and starts the reader and the keepalive).
    /// Call on the transport's core.
    public init(_ transport: T, configuration: RPCConfiguration = .init()) throws {
        guard transport.core.isCurrent else { throw RuntimeError.notOnCore("RPCConnection off its transport's core") }
        self.transport = transport
        self.core = transport.core
        self.configuration = configuration
        self.room = CoreWaitQueue(core: transport.core)
        self.writer = FrameWriter { [unowned transport] capacity in transport.allocateBuffer(capacity: capacity) }
        let connection = UnsafeTransfer(self)
        Task(executorPreference: core.executor) { @concurrent in await connection.value.readLoop() }
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

    /// Whether a caller is reading the connection for its own response now (for tests).
    var callerIsReading: Bool { readRight == .caller }

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

    // MARK: Calls

    @inline(__always)  // once per call: inlined, it takes no async frame of its own
    func begin<Request, Response>(
        _ method: RPCMethod<Request, Response>, _ request: Request, options: RPCCallOptions, kind: FrameKind
    ) async throws(RPCError) -> UInt64 {
        if let failure { throw failure }
        if goingAway { throw RPCError(.unavailable, "the server is shutting down (go-away)") }
        try options.metadata.validate(maximumBytes: min(configuration.maximumMetadataBytes, peerMetadataLimit))
        if !helloSent {
            do { try await sendHello() } catch { throw RPCError(.connectionLost, "the hello could not be sent: \(error)") }
        }
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
            pending.remove(id)
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
            if readRight == .free && deadline == nil && failure == nil && pending.unansweredCount == 1 {
                // The only call in flight, and nobody reads: read its response here, with no
                // hand-off from the reader task (see ``readAsCaller(until:cancellable:)``).
                readRight = .caller
                if await !readAsCaller(until: id, cancellable: cancellable) && !pending.isAnswered(id) {
                    throw await abandon(id, because: CancellationError())
                }
            } else {
                do {
                    _ = try await suspendOnCore(core, deadline: deadline, cancellable: cancellable) { handle in pending.setHandle(id, handle) }
                } catch {
                    if !pending.isAnswered(id) { throw await abandon(id, because: error) }
                }
            }
        }
        let call = pending.remove(id)
        room.signalOne()
        guard let call else { throw RPCError(.connectionLost, "the connection ended") }
        if let response = call.response { return response }
        throw call.error ?? RPCError(.unknown, "no response")
    }

    /// Gives up call `id`, whose wait ended without an answer: returns the error to throw.
    private func abandon(_ id: UInt64, because error: any Error) async -> RPCError {
        pending.remove(id)
        room.signalOne()
        let failure = Self.waitError(error)
        if failure.code == .deadlineExceeded || failure.code == .cancelled {
            // Tell the server to stop working on it; the response, if any, is ignored.
            try? await transport.send(writer.bare(.cancel, callID: id))
        }
        return failure
    }

    private static func waitError(_ error: any Error) -> RPCError {
        switch error {
        case let error as IOError where error.isTimeout: RPCError(.deadlineExceeded, "the deadline passed")
        case is CancellationError: RPCError(.cancelled, "the call was cancelled")
        default: RPCError(.connectionLost, "\(error)")
        }
    }

    // MARK: Reading

    /// The hello goes first, before any call: whichever of the reader and the first caller
    /// runs first sends it (the transport keeps the order in which frames are sent). Callers
    /// check `helloSent` first, so a call pays no async call once it has gone.
    private func sendHello() async throws {
        helloSent = true
        let limits = HelloLimits(
            maximumConcurrentCalls: UInt32(clamping: configuration.maximumConcurrentCalls),
            maximumMetadataBytes: UInt32(clamping: configuration.maximumMetadataBytes))
        try await transport.send(writer.hello(limits))
    }

    private func readLoop() async {
        var ending = RPCError(.connectionLost, "the connection ended")
        do {
            if !helloSent { try await sendHello() }
            reading: while failure == nil {
                if readRight == .caller {
                    // A caller reads its own response: wait until it gives the right back.
                    let woken = (try? await suspendOnCore(core, cancellable: false) { parkedReader = $0 }) != nil
                    parkedReader = nil
                    if !woken {  // the core is stopping (a wait there ends at once: no loop)
                        ending = RPCError(.connectionLost, "the core stopped")
                        break reading
                    }
                    continue
                }
                if resumedCalls {
                    // Frames already read go first, without a wait.
                    readRight = .reader
                    let buffered = try transport.tryRecv()
                    readRight = .free
                    if let buffered {
                        if let end = await dispatch(buffered) {
                            ending = end
                            break reading
                        }
                        continue
                    }
                    // Then the calls it answered run, and their next requests leave (at the
                    // turn's end) before a receive is set up; meanwhile they may read themselves.
                    resumedCalls = false
                    try await core.yieldUntilTurnEnd()
                    continue
                }
                readRight = .reader
                let message = try await transport.nextFrame(cancellable: false)
                readRight = .free
                if let end = await dispatch(message) {
                    ending = end
                    break reading
                }
            }
        } catch {
            if readRight == .reader { readRight = .free }  // it failed while receiving
            ending = RPCError(.connectionLost, "the connection ended: \(error)")
        }
        await fail(ending)
    }

    /// Reads frames as the caller of call `id` until it is answered (or the connection ends),
    /// answering the calls made meanwhile as the reader task would, then gives the right to
    /// read back to the reader task. Returns false if the task was cancelled first: a cancelled
    /// receive loses nothing (``Transport/recv(cancellable:)``), so the connection goes on.
    ///
    /// It saves the hand-off of each response from the reader task to its caller (a resumption,
    /// the reader's yield, and their executor switches), which is most of a lone call's client
    /// time over the transport's. Calls made while others are in flight wait for the reader
    /// task, which takes a run of responses at once.
    private func readAsCaller(until id: UInt64, cancellable: Bool) async -> Bool {
        while failure == nil && !pending.isAnswered(id) {
            let message: Message
            do {
                message = try await transport.nextFrame(cancellable: cancellable)
            } catch is CancellationError where failure == nil {
                readRight = .free
                handOffReading()
                return false
            } catch {
                readRight = .free
                await fail(RPCError(.connectionLost, "the connection ended: \(error)"))
                return true
            }
            if let end = await dispatch(message) {
                readRight = .free
                await fail(end)
                return true
            }
        }
        readRight = .free
        handOffReading()
        return true
    }

    /// Handles one frame; returns why the connection must end, if it must.
    private func dispatch(_ message: Message) async -> RPCError? {
        lastHeard = .coarseNow  // keepalive precision is milliseconds; this read costs no system call
        unansweredPings = 0
        let frame: RPCFrame
        do {
            frame = try RPCFrame.parse(message, maximumMetadataBytes: configuration.maximumMetadataBytes)
        } catch {
            guard error.fatal else { return nil }
            return RPCError(.connectionLost, "the server broke the protocol: \(error.error.message)")
        }
        switch frame.kind {
        case .response:
            complete(frame.callID) { $0.response = frame.payload }
        case .error:
            let status = frame.status ?? RPCError(.unknown, "")
            if frame.callID == 0 {
                return RPCError(.connectionLost, "the server closed the connection: \(status)")
            }
            complete(frame.callID) { $0.error = status }
        case .goAway:
            goingAway = true
            configuration.logger.debug("rpc: go-away", metadata: ["peer": "\(transport.peerAddress.map { "\($0)" } ?? "?")"])
        case .hello:
            if let limits = frame.helloLimits {
                peerLimit = max(Int(limits.maximumConcurrentCalls), 1)
                peerMetadataLimit = Int(limits.maximumMetadataBytes)
            }
        case .ping:
            do { try await transport.send(writer.bare(.pong, callID: frame.callID)) } catch {
                return RPCError(.connectionLost, "the connection ended: \(error)")
            }
        case .pong, .request, .oneWay, .cancel:
            break
        }
        return nil
    }

    /// Gives the free right to read back to the reader task: now if calls wait, else at the
    /// turn's end if nobody has taken it by then (the next call of the caller just answered
    /// usually has: it reads its own response in turn).
    private func handOffReading() {
        guard failure == nil, readRight == .free else { return }
        if pending.unansweredCount > 0 {
            wakeReader()
        } else if !readerCheckScheduled {
            readerCheckScheduled = true
            do { try core.runAtEndOfTurn(readerCheck) } catch { wakeReader() }
        }
    }

    private func wakeReader() {
        if let reader = parkedReader {
            parkedReader = nil
            core.resume(reader)
        }
    }

    private func complete(_ id: UInt64, _ body: (inout PendingCall) -> Void) {
        // An unknown ID is a call that was cancelled or timed out: its response is dropped.
        if let handle = pending.answer(id, body) {
            core.resume(handle)
            resumedCalls = true
        }
    }

    /// Ends the connection with `error`: every pending call fails with it at once.
    private func fail(_ error: RPCError) async {
        guard failure == nil else { return }
        failure = error
        for id in pending.ids { complete(id) { $0.error = error } }
        room.signalAll()
        wakeReader()
        if let keepalive { core.resume(keepalive) }
        await transport.close()
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

/// A turn-end action that runs a closure (``Core/runAtEndOfTurn(_:)`` takes an object).
final class TurnEndCheck: CoreTurnEndAction {
    private let action: () -> Void
    init(_ action: @escaping () -> Void) { self.action = action }
    func coreTurnDidEnd() { action() }
}

/// Who may receive on a connection now.
enum ReadRight {
    case free
    case reader
    case caller
}
