public import NetRuntime

/// A connection that sends and receives whole messages (framed by the driver), on one core.
///
/// Transports are non-Sendable: a connection lives on the core that made it, and the compiler
/// keeps it there. Layers above (pool, RPC) are generic over this protocol and never import a
/// driver.
public protocol Transport: AnyObject, SendableMetatype {
    /// The core the connection lives on.
    var core: Core { get }

    /// Sends one message as one frame. Safe with many concurrent senders: each frame is written
    /// whole and frames keep the order in which `send` was called.
    func send(_ message: Message) async throws

    /// Sends `head` followed by `body` as one frame (a protocol header before a payload the
    /// caller did not build). Drivers gather the two without a copy where they can; the default
    /// copies them into one buffer of ``allocateBuffer(capacity:)``.
    func send(_ head: Message, _ body: Message) async throws

    /// Sends `head` then `body` as one frame if that needs no wait, and returns whether it did:
    /// the synchronous fast path of ``send(_:_:)``, with no suspension and no async frame, for
    /// callers that send often and await ``send(_:_:)`` only when this returns false (the
    /// connection's queue is full, or its driver has no fast path). When it returns false,
    /// nothing was sent.
    ///
    /// - Throws: what ``send(_:_:)`` throws, other than the errors of waiting.
    func trySend(_ head: Message, _ body: Message) throws(TransportError) -> Bool

    /// Writes the frames sent so far now, where the driver would otherwise wait for the end of
    /// the core's turn to write them together with later ones (TCP). A caller that is about to
    /// wait for an answer, with nothing else left to run on the core this turn, calls it so the
    /// wait's own setup is not on the round trip. Drivers that post every send at once do
    /// nothing. Never waits and never throws: an error ends the connection as a write's would.
    func flush()

    /// Receives the next whole frame. One receiver at a time. ``recv()`` is this, cancellable.
    ///
    /// With `cancellable` false, task cancellation does not end the wait, which then costs no
    /// cancellation handler: for a reader that owns the receive side for the connection's life
    /// and ends with it (closing the connection ends the receive). An RPC read loop pays the
    /// handler on every message otherwise.
    ///
    /// A receive ended by task cancellation throws `CancellationError`, loses nothing and leaves
    /// the connection open: the bytes of a frame it had begun to take stay for the next
    /// receive, so a task may give up waiting for a message without ending the connection.
    func recv(cancellable: Bool) async throws -> Message
    /// Returns the next whole frame if one has already arrived, nil if the caller must await
    /// ``recv()``: the synchronous fast path of a receive loop, with no suspension and no async
    /// frame. A malformed frame is left for ``recv()`` to report.
    ///
    /// - Throws: why the connection ended, if it has; `.concurrentReceive` as ``recv()``.
    func tryRecv() throws(TransportError) -> Message?

    /// Hands every frame from now on to `handler`, on the connection's core and in order, in
    /// place of a receive loop: for code that handles each message at once and must never wait
    /// (a server answering with ``trySend(_:_:)`` or ``enqueue(_:_:)``, a client resuming the
    /// caller a response answers; see ``ReceiveEvent``).
    ///
    /// A driver calls `handler` with no task woken per message: RDMA from its completion
    /// queue's poll, TCP from each read's completion in the core's loop
    /// (``Core/receive(_:into:flags:deadline:pollFirst:then:)``). The default runs a receive
    /// loop in a task of its own on the core. Messages already received come first, after this
    /// call returns (never from inside it). The last call is ``ReceiveEvent/ended(_:)``; the connection then lets the
    /// handler go, so a handler may hold the connection it serves. From this call on, ``recv()``
    /// and ``tryRecv()`` throw `.concurrentReceive`.
    ///
    /// - Throws: `.concurrentReceive` if a receive is in progress or a handler is already set;
    ///   `.shutDown` if the core is stopping; `.invalidArgument` off the connection's core.
    func startReceiving(_ handler: @escaping (ReceiveEvent) -> Void) throws(TransportError)

    /// Stops handing frames to the ``startReceiving(_:)`` handler until ``resumeReceiving()``:
    /// frames that arrive meanwhile wait in the driver (RDMA: in their receive buffers, so the
    /// peer runs out of credits; TCP: unread, so its window fills). The backpressure of a handler:
    /// when ``enqueue(_:_:)`` refuses an answer, pause, await ``send(_:_:)`` for it in a task,
    /// then resume (``enqueueOrPause(_:_:sent:)`` does all three); no later answer can overtake
    /// it, since none comes while paused. A pause
    /// ends with the connection: closing it, or its failure, still reaches the handler as
    /// ``ReceiveEvent/ended(_:)``.
    func pauseReceiving()

    /// Hands frames to the handler again after ``pauseReceiving()``, those that waited first:
    /// later (at the end of the turn, or after the poll), never from inside this call, so the
    /// caller may first serve what it kept aside.
    func resumeReceiving()

    /// Sends `head` then `body` as one frame without ever waiting: sent at once where
    /// ``trySend(_:_:)`` would, else queued behind the frames before it (sends waiting for
    /// credits or room), up to the driver's bound. For code that must not suspend (a
    /// ``startReceiving(_:)`` handler): a send failure after this returns ends the connection,
    /// since no caller is left to hear of it.
    ///
    /// - Throws: what ``trySend(_:_:)`` throws; `.resourceExhausted` when the bound is reached
    ///   (nothing is queued then). The default queues nothing past ``trySend(_:_:)``.
    func enqueue(_ head: Message, _ body: Message) throws(TransportError)

    /// A buffer suited to this transport (registered memory for RDMA), so a message built in it
    /// is sent without a copy.
    func allocateBuffer(capacity: Int) -> WritableBuffer

    /// Closes the connection: pending and later calls fail with ``TransportError/Code/closed``.
    func close() async

    /// Whether the connection is still usable.
    var isOpen: Bool { get }

    /// The local address.
    var localAddress: SocketAddress? { get }

    /// The peer's address.
    var peerAddress: SocketAddress? { get }
}

extension Transport {
    /// Copies `head` and `body` into one buffer and sends it.
    public func send(_ head: Message, _ body: Message) async throws {
        if body.isEmpty { return try await send(head) }
        var buffer = allocateBuffer(capacity: head.count + body.count)
        head.withUnsafeBytes { buffer.append($0) }
        body.withUnsafeBytes { buffer.append($0) }
        try await send(buffer.freeze())
    }

    /// Receives the next whole frame: ``recv(cancellable:)``, cancellable.
    @inlinable @inline(__always)
    public func recv() async throws -> Message { try await recv(cancellable: true) }

    /// No fast path: always nil, so callers await ``recv()``.
    public func tryRecv() throws(TransportError) -> Message? { nil }

    /// Nothing to write early: a driver without a flush posts every send at once.
    public func flush() {}

    /// No fast path: always false, so callers await ``send(_:_:)``.
    public func trySend(_ head: Message, _ body: Message) throws(TransportError) -> Bool { false }

    /// ``trySend(_:_:)`` for a frame of one message.
    public func trySend(_ message: Message) throws(TransportError) -> Bool { try trySend(message, Message()) }

    /// The next whole frame, for a receive loop: one already read comes from ``tryRecv()``
    /// without a suspension; otherwise ``recv()`` is awaited. Inlined into the loop, so the fast
    /// path takes no async frame either.
    /// With `cancellable` false the receive is ``recv(cancellable:)``'s.
    @inlinable @inline(__always)
    public func nextFrame(cancellable: Bool = true) async throws -> Message {
        if let buffered = try tryRecv() { return buffered }
        return try await recv(cancellable: cancellable)
    }
}

/// Makes connections of one kind; handed to the connection pool and RPC clients, which never
/// import a driver.
public protocol TransportDialer: Sendable {
    /// The connections it makes.
    associatedtype Connection: Transport

    /// Connects to `address` from `core`, where the connection will live.
    func dial(_ address: SocketAddress, on core: Core) async throws -> Connection
}

/// Accepts connections on one core.
public protocol TransportListener: AnyObject, SendableMetatype {
    /// The connections it accepts.
    associatedtype Connection: Transport

    /// The core it accepts on (where its connections live).
    var core: Core { get }

    /// Waits for the next connection.
    func accept() async throws -> Connection

    /// Stops accepting.
    func close() async

    /// The address it listens on.
    var localAddress: SocketAddress { get }
}
