import NetRuntime
public import NetTransport

extension RDMATransport {
    /// Hands every message from now on to `handler` straight from the completion queue's poll:
    /// no task wakes per message (see ``Transport/startReceiving(_:)``).
    ///
    /// The handler runs after the poll that found the message (or at the end of the turn), never
    /// inside a completion's handling, so its sends are as any other code's. A message it keeps
    /// holds its receive buffer, and the buffer's credit, until released.
    ///
    /// With ``Configuration/busyPolling`` the core polls the completion queue itself while it is
    /// idle (``Core/addIdlePoller(_:for:)``), for at least that long after its last work before
    /// it parks, until the connection ends: a message is then handed over without a completion
    /// event (counted in ``Statistics/busyPolledReceives``).
    ///
    /// - Throws: ``TransportError`` `.concurrentReceive` while a receive is in progress or once a
    ///   handler is set; `.shutDown` if the core is stopping.
    public func startReceiving(_ handler: @escaping (ReceiveEvent) -> Void) throws(TransportError) {
        guard !receiving else {
            throw TransportError(.concurrentReceive, "startReceiving called while a receive is in progress or a handler is set")
        }
        if let spin = configuration.busyPolling, isOpen {
            try context.startIdlePolling(for: spin)
            pollsWhileIdle = true
        }
        receiving = true  // for good: recv and tryRecv now throw `.concurrentReceive`
        self.handler = handler
        if !ready.isEmpty || failure != nil { scheduleDelivery() }
    }

    /// Posts `head` then `body` as one message, as ``trySend(_:_:)`` does, or queues it behind
    /// the sends waiting for credits or send-queue slots, up to ``Configuration/maximumQueuedSends``:
    /// it never waits. A queued message that then fails (registered memory for its copy ran
    /// out) ends the connection.
    ///
    /// - Throws: what ``trySend(_:_:)`` throws; `.resourceExhausted` when
    ///   ``Configuration/maximumQueuedSends`` sends wait already (nothing is queued then).
    public func enqueue(_ head: Message, _ body: Message) throws(TransportError) {
        if try trySend(head, body) { return }
        guard pending.count < configuration.maximumQueuedSends else {
            throw TransportError(.resourceExhausted, "\(pending.count) sends wait for credits already (maximumQueuedSends)")
        }
        pending.append(PendingSend(head, body, detached: true))
        statistics.sendsDelayed += 1
    }

    /// Stops handing messages to the handler until ``resumeReceiving()``: they wait in their
    /// receive buffers, whose credits the peer then lacks (see ``Transport/pauseReceiving()``).
    public func pauseReceiving() {
        receivePaused = true
    }

    /// Hands messages to the handler again, those that waited first (after the current poll,
    /// or at the end of the turn).
    public func resumeReceiving() {
        guard receivePaused else { return }
        receivePaused = false
        if handler != nil && (!ready.isEmpty || failure != nil) { scheduleDelivery() }
    }

    /// A message is ready (or a rendezvous message became whole): the waiting receive wakes, or
    /// the handler gets it after the poll.
    @inline(__always)
    func messagesArrived() {
        if handler == nil {
            receivers.signalOne()
        } else {
            scheduleDelivery()
        }
    }

    /// Has the context call ``deliverReady()`` after its poll, or at the turn's end.
    func scheduleDelivery() {
        guard !deliveryDue else { return }
        deliveryDue = true
        context.deliverLater(self)
    }

    /// Whether the handler is to get the next ready message: unpaused while open; after a clean
    /// end, paused or not (the end ends a pause, and what came before it goes first); after any
    /// other end, never.
    private var handsOverMessages: Bool {
        guard let failure else { return !receivePaused }
        return failure.code == .closed
    }

    /// Hands the ready messages, in order, to the handler; after the connection's end, the end
    /// too, once, letting the handler go. Messages that arrived before a clean end are handed
    /// over first, as ``recv()`` would return them; after any other end, none are.
    func deliverReady() {
        deliveryDue = false
        guard let handler else { return }
        while handsOverMessages, let message = takeReadyMessage() {
            if context.inIdlePoll { statistics.busyPolledReceives += 1 }
            handler(.message(message))
        }
        if let failure, self.handler != nil {
            self.handler = nil
            ready.removeAll()  // a rendezvous message still being read will never be whole
            if pollsWhileIdle {
                pollsWhileIdle = false
                context.stopIdlePolling()
            }
            handler(.ended(failure))
        }
    }
}
