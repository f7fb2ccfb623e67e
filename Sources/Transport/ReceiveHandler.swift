import NetRuntime

/// What a connection hands the handler of ``Transport/startReceiving(_:)``.
///
/// The handler runs on the connection's core, outside any task: it must not block, and it
/// answers with ``Transport/trySend(_:_:)`` or ``Transport/enqueue(_:_:)``, which never wait.
/// Work that must wait goes to a task of its own (``Core/spawn(_:)``). A message it keeps holds
/// its buffer (for RDMA a receive buffer, whose credit goes back only when it is released).
public enum ReceiveEvent {
    /// A whole frame, in order.
    case message(Message)
    /// The connection ended, cleanly (`.closed`) or not; no call follows. Messages that
    /// arrived before a clean end have all been handed over.
    case ended(TransportError)
}

extension Transport {
    /// A receive loop in a task of its own on the core, handing each frame to `handler`: the
    /// default for a driver without a path of its own. It promises less than the requirement:
    /// the driver refuses another receive only while the loop waits in ``recv()``, and a second
    /// call's handler ends with the driver's `.concurrentReceive` rather than the call throwing.
    public func startReceiving(_ handler: @escaping (ReceiveEvent) -> Void) throws(TransportError) {
        do {
            try core.spawn { [self] in
                do {
                    while true { handler(.message(try await nextFrame(cancellable: false))) }
                } catch let error as TransportError {
                    handler(.ended(error))
                } catch {
                    handler(.ended(TransportError(.closed, "the receive loop ended: \(error)")))
                }
            }
        } catch {
            throw TransportError(error.isShutDown ? .shutDown : .invalidArgument, "startReceiving: \(error.message)")
        }
    }

    /// Nothing: a driver without a pause of its own keeps handing frames over.
    public func pauseReceiving() {}

    /// Nothing: a driver without a pause of its own never paused.
    public func resumeReceiving() {}

    /// ``trySend(_:_:)`` or `.resourceExhausted`: a driver without a send queue of its own
    /// queues nothing.
    public func enqueue(_ head: Message, _ body: Message) throws(TransportError) {
        guard try trySend(head, body) else {
            throw TransportError(.resourceExhausted, "the connection cannot take a frame without waiting")
        }
    }

    /// ``enqueue(_:_:)`` for a frame of one message.
    public func enqueue(_ message: Message) throws(TransportError) { try enqueue(message, Message()) }

    /// Sends `head` then `body` as one frame from a ``startReceiving(_:)`` handler without
    /// waiting, with the handler's backpressure (see ``pauseReceiving()``): ``enqueue(_:_:)``
    /// when the driver takes the frame; when it has no room (`.resourceExhausted`), pauses the
    /// receiving, sends the frame from a task on the core, then resumes the receiving and calls
    /// `sent`. Where the driver can pause, no later frame reaches the handler meanwhile, so no
    /// later answer overtakes this one. A send that then fails closes the connection, whose end
    /// reaches the handler.
    ///
    /// - Returns: true if the frame was taken at once; false if it waits (receiving paused).
    /// - Throws: what ``enqueue(_:_:)`` throws but `.resourceExhausted`; `.invalidArgument` off
    ///   the connection's core.
    @discardableResult
    public func enqueueOrPause(
        _ head: Message, _ body: Message = Message(), sent: @escaping () -> Void = {}
    ) throws(TransportError) -> Bool {
        do {
            try enqueue(head, body)
            return true
        } catch where error.code == .resourceExhausted {
            do {
                try core.spawn { [self] in
                    do {
                        try await send(head, body)
                    } catch {
                        await close()
                        return
                    }
                    resumeReceiving()  // hands frames over later, never from inside the call
                    sent()
                }
            } catch {
                throw TransportError(.invalidArgument, "enqueueOrPause: \(error.message)")
            }
            pauseReceiving()
            return false
        }
    }
}
