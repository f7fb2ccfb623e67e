import DequeModule
import HeapModule
import NetRuntime
import NetTransport
import Logging

/// One connection served by an ``RPCServer``, on its core: a receive handler that parses frames,
/// runs inline handlers at once and starts a worker task per other call, a deadline sweeper, and
/// the drain. Non-Sendable: it lives on its core.
final class ServerConnection<T: Transport>: DrainableConnection {
    let transport: T
    let server: RPCServer
    let writer: FrameWriter
    let core: Core
    let peer: SocketAddress?
    private let serverKey: ObjectIdentifier

    /// Calls running now, by call ID.
    // Confined to the core's thread: no dynamic exclusivity checks on the per-call state (see TCPTransport).
    @exclusivity(unchecked) private var calls: [UInt64: RunningCall] = [:]
    private var deadlines = Heap<DeadlineEntry>()
    private var sweeper: CoreWakeHandle?
    private var sweeperRunning = false
    private var helloReceived = false
    private var draining = false
    private var ended = false
    private var highestCallID: UInt64 = 0
    /// An answer the transport had no room for is being sent by a task; frames wait meanwhile.
    private var answerWaiting = false
    /// A connection-level error is being sent before the close; frames are ignored.
    private var closing = false
    /// Frames that came while an answer waited (only from a driver that cannot pause).
    @exclusivity(unchecked) private var backlog = Deque<Message>()
    /// Closes the connection if its last frame (a go-away, an error) has not gone in time.
    private var closeTimer: Task<Void, Never>?

    @exclusivity(unchecked) private var idleWorkers: [CallWorker] = []

    init(_ transport: T, server: RPCServer) {
        self.transport = transport
        self.server = server
        self.core = transport.core
        self.peer = transport.peerAddress
        self.serverKey = ObjectIdentifier(server)
        self.writer = FrameWriter { [unowned transport] capacity in transport.allocateBuffer(capacity: capacity) }
    }

    /// Starts serving (on the core's thread): the hello, then every frame from the transport's
    /// receive handler (``Transport/startReceiving(_:)``), with no task woken per frame.
    func launch() {
        let connection = UnsafeTransfer(self)
        Task(executorPreference: core.executor) { @concurrent in await connection.value.start() }
    }

    private var configuration: RPCConfiguration { server.configuration }

    /// The peer's address for the log.
    private var peerText: String { peer.map { "\($0)" } ?? "?" }

    // MARK: Reading

    private func start() async {
        let limits = HelloLimits(
            maximumConcurrentCalls: UInt32(clamping: configuration.maximumConcurrentCalls),
            maximumMetadataBytes: UInt32(clamping: configuration.maximumMetadataBytes))
        do {
            try await transport.send(writer.hello(limits))
            // The handler holds this connection until the transport's end, which it hears last.
            try transport.startReceiving { [self] event in received(event) }
        } catch {
            await end()  // the peer went before the hello, or the core is stopping
        }
    }

    /// The transport's receive handler: frames in order, then the end. A frame that comes while
    /// an answer waits for room (`answerWaiting`) waits behind it, so answers keep their order.
    private func received(_ event: ReceiveEvent) {
        switch event {
        case .message(let message):
            guard !ended && !closing else { return }
            guard !answerWaiting && backlog.isEmpty else {
                // The transport was asked to pause: only a driver without a pause of its own
                // hands more over. The client has then sent more than its calls' worth of frames
                // without reading its answers.
                guard backlog.count < configuration.maximumConcurrentCalls else {
                    configuration.logger.debug("rpc: closing a connection that sends without reading", metadata: ["peer": "\(peerText)"])
                    closeAfter(writer.status(.error, callID: 0, RPCError(.resourceExhausted, "frames sent without reading the answers")))
                    return
                }
                backlog.append(message)
                return
            }
            serve(message)
        case .ended:
            // The transport ended: the peer closed, reset or went silent, or this side closed.
            _ = try? core.spawn { [self] in await end() }
        }
    }

    /// Parses and serves one frame, never waiting: answers go out with ``answer(_:_:)``.
    private func serve(_ message: Message) {
        let frame: RPCFrame
        do {
            frame = try RPCFrame.parse(message, maximumMetadataBytes: configuration.maximumMetadataBytes)
        } catch {
            if error.fatal || !helloReceived {
                // Before the hello nothing but a hello is valid, whatever else is wrong.
                let status = error.fatal ? error.error : RPCError(.protocolError, "the first frame must be a hello")
                configuration.logger.debug("rpc: closing a connection that broke the protocol", metadata: ["peer": "\(peerText)", "error": "\(status)"])
                closeAfter(writer.status(.error, callID: 0, status))
            } else if let callID = error.callID, calls[callID] != nil {
                closeAfter(writer.status(.error, callID: 0, RPCError(.protocolError, "duplicate call ID \(callID)")))
            } else if let callID = error.callID, error.kind != .oneWay {
                answer(writer.status(.error, callID: callID, error.error), callID: callID)  // a one-way call gets nothing back
            }
            return
        }
        if !helloReceived {
            guard frame.kind == .hello, let versions = frame.helloVersions, versions.contains(RPCWire.version) else {
                let reason = frame.kind == .hello ? "no common protocol version" : "the first frame must be a hello"
                closeAfter(writer.status(.error, callID: 0, RPCError(.protocolError, reason)))
                return
            }
            helloReceived = true
            return
        }
        handle(frame)
    }

    /// Handles one frame.
    @inline(__always)  // once per frame
    private func handle(_ frame: RPCFrame) {
        switch frame.kind {
        case .request, .oneWay:
            startCall(frame)
        case .cancel:
            if var call = calls[frame.callID] {  // an unknown ID: the call already ended
                call.cancelledByPeer = true
                calls.updateValue(call, forKey: frame.callID)
                call.worker?.retired = true
                call.worker?.task?.cancel()
            }
        case .ping:
            answer(writer.bare(.pong, callID: frame.callID), callID: frame.callID)
        case .pong, .hello, .response, .error, .goAway:
            break  // a client's responses, errors or go-aways have no meaning here; ignored
        }
    }

    /// Sends an answer to call `callID` from the receive handler without waiting: queued by the
    /// transport, or, when it has no room, sent by a task while the transport pauses and later
    /// frames wait (``Transport/enqueueOrPause(_:_:sent:)``: the backpressure, the peer's sends
    /// stall). An answer larger than the transport carries fails its call instead.
    private func answer(_ head: Message, _ body: Message = Message(), callID: UInt64) {
        do {
            answerWaiting = try !transport.enqueueOrPause(head, body) { [self] in
                answerWaiting = false
                serveBacklog()
            }
        } catch where error.code == .frameTooLarge {
            // Nothing was queued and the connection is sound: the call fails, and says why.
            answer(writer.status(.error, callID: callID, Self.tooLarge(error)), callID: callID)
        } catch {
            // The connection ended: no one to answer, and its end reaches the handler.
        }
    }

    /// The error of a call whose response is above the largest message the transport carries
    /// (TCP's `maximumFrameSize`, RDMA's maximum message size).
    static func tooLarge(_ error: TransportError) -> RPCError {
        RPCError(.resourceExhausted, "the response is larger than the connection carries (\(error.message))")
    }

    /// Serves the frames that waited behind an answer (the transport hands more over later).
    private func serveBacklog() {
        while !answerWaiting && !ended && !closing, let message = backlog.popFirst() { serve(message) }
    }

    /// Sends `status` (a connection-level error), then closes: later frames are not read, and
    /// a peer that does not take the error closes within ``RPCConfiguration/closeTimeout``.
    private func closeAfter(_ status: Message) {
        closing = true
        backlog.removeAll()
        transport.pauseReceiving()
        closeWithin(configuration.closeTimeout)
        _ = try? core.spawn { [self] in
            try? await transport.send(status)
            await close()
        }
    }

    /// Closes the connection after `timeout` unless it has ended by then: the bound on a last
    /// frame's send, which waits for as long as the peer reads nothing.
    private func closeWithin(_ timeout: Duration) {
        guard closeTimer == nil else { return }
        closeTimer = try? core.spawn { [self] in
            do { try await core.sleep(for: timeout) } catch { return }  // cancelled: it ended in time
            await close()
        }
    }

    @inline(__always)
    private func startCall(_ frame: RPCFrame) {
        let id = frame.callID
        let oneWay = frame.kind == .oneWay
        if !calls.isEmpty && calls[id] != nil {  // no hashing while only inline handlers run
            // Two calls with one ID: responses could not be told apart. The client is broken.
            closeAfter(writer.status(.error, callID: 0, RPCError(.protocolError, "duplicate call ID \(id)")))
            return
        }
        func refuse(_ error: RPCError) {
            if !oneWay { answer(writer.status(.error, callID: id, error), callID: id) }
        }
        if draining {
            refuse(RPCError(.unavailable, "the server is shutting down"))
            return
        }
        guard calls.count < configuration.maximumConcurrentCalls else {
            refuse(RPCError(.resourceExhausted, "over \(configuration.maximumConcurrentCalls) calls in flight on this connection"))
            return
        }
        guard let handler = server.handlers.handler(for: frame.method) else {
            refuse(RPCError(.unknownMethod, "no method \(frame.method)"))
            return
        }
        highestCallID = max(highestCallID, id)
        // The arrival time, read only when a deadline or the latency metric needs it.
        let start = frame.timeoutNanoseconds != nil || server.recordsMetrics ? Deadline.now : nil
        var deadline: Deadline?
        if let timeout = frame.timeoutNanoseconds, let start {
            deadline = Deadline(nanoseconds: start.nanoseconds &+ min(timeout, UInt64(Int64.max) / 2))
        }
        let context = RPCContext(
            core: core, peer: peer, deadline: deadline, metadata: frame.metadata, method: frame.method, callID: id)
        if let inline = handler.runInline {
            // Runs here and now: no task, no entry in `calls` (it ends before the next frame).
            var response = Payload()
            var failure: RPCError?
            if deadline?.hasPassed == true {
                failure = RPCError(.deadlineExceeded, "the deadline passed before the handler ran")
            } else {
                do { try inline(frame.payload, context, &response) } catch { failure = error }
            }
            if let frame = answerFrame(handler, context, oneWay: oneWay, start: start, response: response, failure: failure) {
                answer(frame.head, frame.body, callID: id)
            }
            return
        }
        let job = CallJob(handler: handler, payload: frame.payload, context: context, oneWay: oneWay, start: start)
        let worker: CallWorker
        if let idle = idleWorkers.popLast() {
            worker = idle
            worker.job = job
            if let handle = worker.handle { core.resume(handle) }
        } else {
            worker = CallWorker()
            worker.job = job
            let connection = UnsafeTransfer(self)
            let transfer = UnsafeTransfer(worker)
            worker.task = Task(executorPreference: core.executor) { @concurrent in
                await connection.value.work(transfer.value)
            }
        }
        calls.updateValue(RunningCall(worker: worker), forKey: id)
        if let deadline {
            if deadline.hasPassed {
                expire(id)
            } else {
                deadlines.insert(DeadlineEntry(deadline: deadline, callID: id))
                // Entries of ended calls leave only from the top: behind one long call they pile
                // up. Past twice the calls running (and some slack) they are dropped, at a cost of
                // O(entries) at most once per `endedDeadlinesAllowed` calls.
                if deadlines.count > 2 * calls.count + Self.endedDeadlinesAllowed {
                    deadlines = Heap(deadlines.unordered.filter { calls[$0.callID] != nil })
                }
                armSweeper()
            }
        }
    }

    /// Deadline entries of ended calls kept before they are dropped (see `startCall`).
    static var endedDeadlinesAllowed: Int { 1024 }

    /// How many deadline entries the connection holds (for tests).
    var deadlineEntries: Int { deadlines.count }

    /// Cancels call `id` because its deadline passed.
    private func expire(_ id: UInt64) {
        guard var call = calls[id] else { return }
        call.expired = true
        calls.updateValue(call, forKey: id)
        call.worker?.retired = true
        call.worker?.task?.cancel()
    }

    /// A worker's loop: run the job it was given, go idle, wait for the next.
    private func work(_ worker: CallWorker) async {
        while !ended {
            if let job = worker.job {
                worker.job = nil
                await run(job.handler, payload: job.payload, context: job.context, oneWay: job.oneWay, start: job.start)
                if worker.retired || ended { break }
                idleWorkers.append(worker)
            }
            do {
                // A job given before the worker has suspended is kept: the resume is not lost.
                // Not cancellable: the connection resumes idle workers when it ends, and a
                // cancelled worker retires before it gets here.
                _ = try await suspendOnCore(core, cancellable: false) { handle in
                    worker.handle = handle
                    if worker.job != nil || ended { core.resume(handle) }
                }
            } catch {
                break
            }
            worker.handle = nil
        }
        idleWorkers.removeAll { $0 === worker }
        worker.handle = nil
    }

    private func run(_ handler: RPCHandler, payload: Message, context: RPCContext, oneWay: Bool, start: Deadline?) async {
        var response = Payload()
        var failure: RPCError?
        if Task.isCancelled {
            failure = RPCError(.cancelled, "cancelled")
        } else {
            do {
                try await handler.run(payload, context, &response)
            } catch {
                failure = error
            }
        }
        let call = calls.removeValue(forKey: context.callID)
        if call?.expired == true {
            failure = RPCError(.deadlineExceeded, "the deadline passed while the handler ran")
        }
        await finish(handler, context, oneWay: oneWay, start: start, response: response, failure: failure)
        if draining && calls.isEmpty { await close() }
    }

    /// Records a worker's call in the metrics and sends its response or error.
    private func finish(
        _ handler: RPCHandler, _ context: RPCContext, oneWay: Bool, start: Deadline?, response: Payload, failure: RPCError?
    ) async {
        guard let frame = answerFrame(handler, context, oneWay: oneWay, start: start, response: response, failure: failure) else {
            return
        }
        do {
            if try transport.trySend(frame.head, frame.body) { return }
            try await transport.send(frame.head, frame.body)
        } catch let error as TransportError where error.code == .frameTooLarge {
            // Nothing was sent and the connection is sound: the call fails, and says why.
            try? await transport.send(writer.status(.error, callID: context.callID, Self.tooLarge(error)))
        } catch {
            // The connection ended: no one to answer.
        }
    }

    /// Records the call in the metrics and builds its response or error: nil when nothing is
    /// to be sent (a one-way call, or the connection ended).
    private func answerFrame(
        _ handler: RPCHandler, _ context: RPCContext, oneWay: Bool, start: Deadline?, response: Payload, failure: RPCError?
    ) -> (head: Message, body: Message)? {
        // Without a metrics backend every instrument is a no-op: skip the lookup and the copies.
        if server.recordsMetrics { server.metrics[handler.id]?.record(start: start, failed: failure != nil) }
        guard !oneWay && !ended else { return nil }
        if let failure { return (writer.status(.error, callID: context.callID, failure), Message()) }
        let body = response.message { transport.allocateBuffer(capacity: $0) }
        return (writer.response(callID: context.callID), body)
    }

    // MARK: Deadlines

    /// Wakes or starts the sweeper, which cancels calls past their deadline.
    private func armSweeper() {
        if let sweeper {
            core.resume(sweeper)
        } else if !sweeperRunning {
            sweeperRunning = true
            let connection = UnsafeTransfer(self)
            Task(executorPreference: core.executor) { @concurrent in await connection.value.sweep() }
        }
    }

    private func sweep() async {
        while !ended {
            while let first = deadlines.min, first.deadline.hasPassed || calls[first.callID] == nil {
                deadlines.removeMin()
                expire(first.callID)
            }
            do {
                _ = try await suspendOnCore(core, deadline: deadlines.min?.deadline ?? .distantFuture) { sweeper = $0 }
            } catch let error as IOError where error.isTimeout {
            } catch {
                break
            }
            sweeper = nil
        }
        sweeper = nil
        sweeperRunning = false
    }

    // MARK: Ending

    /// Go-away, then close once the calls in flight have ended, or when the drain timeout
    /// passes, whichever comes first: the timeout also bounds the go-away's own send, which
    /// waits for as long as the client reads nothing. Returns at once, so one such client holds
    /// up no other connection's drain.
    func drain() {
        guard !draining, !ended else { return }
        draining = true
        closeWithin(configuration.drainTimeout)
        let goAway = writer.status(.goAway, callID: highestCallID, RPCError(.unavailable, "the server is shutting down"))
        // Queued now when there is room, so it goes before any answer to a later frame (a
        // refusal with `unavailable` never reaches the client ahead of the go-away).
        let queued = (try? transport.enqueue(goAway)) != nil
        _ = try? core.spawn { [self] in
            if !queued { try? await transport.send(goAway) }
            if calls.isEmpty { await close() }
        }
    }

    private func close() async {
        guard !ended else { return }
        ended = true
        closeTimer?.cancel()
        closeTimer = nil
        await transport.close()
    }

    private func end() async {
        ended = true
        closeTimer?.cancel()
        closeTimer = nil
        for call in calls.values { call.worker?.task?.cancel() }
        for worker in idleWorkers { if let handle = worker.handle { core.resume(handle) } }
        if let sweeper { core.resume(sweeper) }
        await transport.close()
        if let registry = try? ServerRegistry.on(core) { registry.remove(self, for: serverKey) }
        server.connectionEnded()
    }
}
