#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
public import NetTransport

/// The reads of a receive handler (``TCPTransport/startReceiving(_:)``): each read completes into
/// the core's loop, which calls the pump (``Core/receive(_:into:flags:deadline:pollFirst:then:)``); the pump
/// hands every whole frame to the handler and starts the next read. No task, continuation or job
/// per read. The pump and its connection hold each other until the connection's end.
final class TCPReceivePump: CoreCompletionHandler, CoreTurnEndAction {
    let transport: TCPTransport
    /// The application's handler; nil once it has been told of the end.
    var handler: ((ReceiveEvent) -> Void)?
    /// The storage the read in flight writes into, held until its completion (a connection's end
    /// lets go of a large frame's storage at once).
    var reading: BufferStorage?
    private var serveScheduled = false

    init(_ transport: TCPTransport, _ handler: @escaping (ReceiveEvent) -> Void) {
        self.transport = transport
        self.handler = handler
    }

    func coreOperationCompleted(_ result: Int32) { transport.receiveHandlerReadCompleted(result) }

    func coreTurnDidEnd() {
        serveScheduled = false
        transport.serveReceiveHandler()
    }

    /// Serves the handler at the end of this turn, unless a read is in flight (its completion
    /// serves it).
    func scheduleServe() throws(RuntimeError) {
        guard reading == nil, !serveScheduled else { return }
        try transport.core.runAtEndOfTurn(self)
        serveScheduled = true
    }

    /// ``scheduleServe()``, or, once the core's loop has ended (no turn ends any more), the
    /// service now: a paused handler still hears the connection's end.
    func serveSoon() {
        do { try scheduleServe() } catch where error.isShutDown { transport.serveReceiveHandler() } catch {}
    }
}

extension TCPTransport {
    /// Hands every frame from now on to `handler` (see ``Transport/startReceiving(_:)``): each
    /// read's completion comes from the core's loop straight to the connection, which hands the
    /// handler every whole frame of that read, then starts the next (before it, what the handler
    /// queued is written). A frame already read costs no read; the handler's replies leave
    /// together at the end of the turn. `recv` and `tryRecv` throw `.concurrentReceive` from
    /// this call on.
    ///
    /// - Throws: `.concurrentReceive` while a receive is in progress or once a handler is set;
    ///   `.invalidArgument` off the connection's core; `.shutDown` if the core is stopping.
    public func startReceiving(_ handler: @escaping (ReceiveEvent) -> Void) throws(TransportError) {
        guard !receiving else {
            throw TransportError(.concurrentReceive, "startReceiving called while a receive is in progress or a handler is set")
        }
        let pump = TCPReceivePump(self, handler)
        do {
            try pump.scheduleServe()  // frames already read come first, after this call returns
        } catch {
            throw TransportError(error.isShutDown ? .shutDown : .invalidArgument, "startReceiving: \(error.message)")
        }
        receivePump = pump
        receiving = true  // for good: the pump owns the receive side until the connection ends
    }

    /// Stops handing frames to the handler until ``resumeReceiving()``: no read is started, so
    /// the socket's receive buffer and then the peer's window fill (see
    /// ``Transport/pauseReceiving()``). A read in flight completes; its frames wait.
    public func pauseReceiving() {
        receivePaused = true
    }

    /// Hands frames to the handler again (at the end of the turn), those already read first.
    public func resumeReceiving() {
        guard receivePaused else { return }
        receivePaused = false
        receivePump?.serveSoon()
    }

    /// Hands the handler every whole frame read, then starts the next read; or, paused, stops;
    /// or, the connection ended, ends the handler.
    func serveReceiveHandler() {
        guard let pump = receivePump, pump.reading == nil else { return }
        do {
            try checkOpen()
            while !receivePaused {
                switch try nextReceiveStep() {
                case .frame(let frame):
                    pump.handler?(.message(frame))
                    try checkOpen()
                case .read(let storage, let free):
                    flush()
                    pump.reading = storage
                    // Tasks the handler woke (callers it answered) will send first, and only then
                    // can an answer come: the read waits for readiness rather than try at once.
                    try core.receive(fd, into: free, deadline: readDeadline, pollFirst: core.hasQueuedJobs, then: pump)
                    return
                }
            }
        } catch {
            endReceiveHandler(error)
        }
    }

    /// A read of the handler's completed: `result` bytes, or `-errno`.
    func receiveHandlerReadCompleted(_ result: Int32) {
        guard let pump = receivePump else { return }
        pump.reading = nil
        do {
            if result < 0 {
                // Cancelled with the connection still open: only the core's stop cancels a read then.
                if result == -ECANCELED && failure == nil {
                    throw RuntimeError.shutDown("core \(core.index) stopped while recv was in flight")
                }
                throw IOError(code: -result, operation: .recv)
            }
            try didReceive(Int(result))
        } catch {
            endReceiveHandler(error)
            return
        }
        serveReceiveHandler()
    }

    /// Ends the connection after its receive ended with `error`, then tells the handler, last.
    func endReceiveHandler(_ error: any Error) {
        guard let pump = receivePump, let handler = pump.handler else { return }
        pump.handler = nil
        receivePump = nil
        _ = try? core.spawn { [self] in
            let ended = await receiveEnded(by: error)
            handler(.ended(ended as? TransportError ?? TransportError(.closed, "the receive ended: \(ended)")))
        }
    }

    /// The connection ended (``fail(_:)``): a handler with no read in flight hears it at the end
    /// of the turn; a read in flight is cancelled, and its completion tells it.
    func receiveHandlerConnectionEnded() {
        receivePump?.serveSoon()
    }
}
