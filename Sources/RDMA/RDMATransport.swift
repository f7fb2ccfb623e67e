#if canImport(Glibc)
import Glibc
#endif
import CRDMA
import DequeModule
public import NetRuntime
public import NetTransport

/// An RDMA connection (a reliable-connected queue pair set up through rdma_cm) that sends and
/// receives whole messages, living on one core. See docs/RDMA.md.
///
/// - Every message is one SEND_WITH_IMM: the payload as it is (no header), the immediate data
///   carrying the message kind and the credits returned (``ImmediateData``).
/// - Sending: any number of tasks on the core may send at once; messages go out in call order.
///   `send` returns once its message is posted to the queue pair; it waits while the peer has no
///   receive free for it (credits) or the send queue is full. A message in this connection's
///   registered memory (``allocateBuffer(capacity:)``) is sent without a copy; a small one is
///   sent inline; any other is copied into registered memory.
/// - Receiving: each message is returned over the registered receive buffer it landed in (no
///   copy); the buffer is posted again, and its credit returned to the peer, when the last
///   message referring to it is released.
/// - Closing: a graceful ``close()`` waits (up to `closeTimeout`) for queued and in-flight sends,
///   then disconnects. A peer that disconnects, breaks the protocol or fails ends the connection
///   with a ``TransportError``, which pending and later calls throw.
public final class RDMATransport: Transport {
    /// The core the connection lives on.
    public let core: Core
    /// The configuration, brought into range.
    public let configuration: Configuration
    /// The local address (known once the connection is up).
    public private(set) var localAddress: SocketAddress?
    /// The peer's address (known once the connection is up).
    public private(set) var peerAddress: SocketAddress?

    let context: RDMACoreContext
    let device: RDMADeviceContext
    let id: UnsafeMutablePointer<rdma_cm_id>
    let events: CMEventQueue
    let queuePair: UnsafeMutablePointer<ibv_qp>
    /// The connection's number on its core (the high half of every `wr_id`).
    private(set) var number: UInt32 = 0
    /// What the device granted for inline sends.
    let inlineLimit: Int
    /// ``Configuration/busyPolling`` and ``Configuration/busyPollingServiceInterval`` in
    /// nanoseconds, converted once: a `Duration`'s conversion costs hundreds of instructions
    /// (128-bit arithmetic), and a busy-polling receive needs both.
    let busyPollNanoseconds: UInt64?
    let busyPollServiceNanoseconds: UInt64
    let completionsReserved: Int

    // The connection is confined to its core's thread (non-Sendable): the dynamic exclusivity
    // checks Swift adds to class properties buy nothing on the per-message state below, and cost
    // a thread-local lookup each (see TCPTransport).

    // Flow control and signalling (pure bookkeeping, see their types).
    @exclusivity(unchecked) var flow: CreditFlowController
    @exclusivity(unchecked) var signals: SendSignalPolicy
    /// The peer's handshake, once known; until then completions wait in `early`.
    @exclusivity(unchecked) var peer: Handshake?
    @exclusivity(unchecked) var early: [WorkCompletion] = []
    /// The largest message we send: ours or the peer's maximum, whichever is smaller (or the
    /// peer's receive buffer, when either side does not speak rendezvous).
    var maximumSendSize: Int
    /// Messages up to this size go eagerly (the peer's receive buffer); larger by rendezvous.
    var eagerLimit: Int
    /// Outstanding RDMA READs granted (0: no rendezvous and no one-sided READ).
    let readDepth: Int

    // Sending.
    @exclusivity(unchecked) var pending = Deque<PendingSend>()
    /// What each posted work request still needs (memory the device reads or writes, a READ or
    /// a batch to finish), by sequence number modulo the send-queue depth.
    @exclusivity(unchecked) var inFlight: [InFlightWork?]
    let senders: CoreWaitQueue

    // Rendezvous (RDMATransport+Rendezvous.swift).
    /// Our large messages the peer is reading (one or two segments each), by token, until its
    /// done message.
    @exclusivity(unchecked) var lent: [UInt32: [RegisteredBytes]] = [:]
    @exclusivity(unchecked) var nextToken: UInt32 = 0
    /// The peer's large messages to read, waiting for a send-queue slot.
    @exclusivity(unchecked) var pendingReads = Deque<IncomingRead>()
    /// Tokens of the peer's messages we have read, to tell it in done messages.
    @exclusivity(unchecked) var readTokens: [UInt32] = []

    // One-sided operations waiting for send-queue slots (RDMATransport+OneSided.swift).
    let oneSidedWaiters: CoreWaitQueue

    // Receiving.
    let slots: [SlabAllocator.Chunk]
    /// Lends the receive buffers to the messages received into them.
    let receiveLender: ReceiveBufferLender
    /// Whether each receive buffer is posted now.
    @exclusivity(unchecked) var slotPosted: CoreList<Bool>
    /// Receive buffers whose messages are gone, to be posted again (see ``released(slot:)``).
    @exclusivity(unchecked) var releasedSlots = CoreList<Int>()
    /// Receive buffers given up before the teardown (a receive that broke the protocol, failed,
    /// or came after the end): freed by the teardown.
    @exclusivity(unchecked) var abandonedSlots: [Int] = []
    /// Messages received, in order; a rendezvous message holds its place while it is read.
    @exclusivity(unchecked) var ready = Deque<Arrival>()
    let receivers: CoreWaitQueue
    /// Whether a receive is in progress; for good once a handler takes the messages.
    @exclusivity(unchecked) var receiving = false
    /// The receive handler (``startReceiving(_:)``), until the connection's end is handed to it.
    @exclusivity(unchecked) var handler: ((ReceiveEvent) -> Void)?
    /// Whether the handler's messages wait (``pauseReceiving()``).
    @exclusivity(unchecked) var receivePaused = false
    /// Whether the context is to hand this connection's messages to its handler.
    @exclusivity(unchecked) var deliveryDue = false
    /// Whether the core polls the completion queue while idle for this connection's handler.
    @exclusivity(unchecked) var pollsWhileIdle = false

    /// Why the connection ended, once it has.
    @exclusivity(unchecked) var failure: TransportError?
    /// Whether the queue pair and id are destroyed.
    @exclusivity(unchecked) var tornDown = false
    /// Set when the peer's disconnect is being handled: flushed work requests are expected.
    @exclusivity(unchecked) var peerDisconnecting = false
    /// A send was flushed by a disconnect: the peer left mid-transfer.
    @exclusivity(unchecked) var sendsLost = false
    /// Test hook: send data past the credits, to check the peer's detection of it.
    var ignoresCreditsForTesting = false

    /// Counters for tests and metrics.
    public struct Statistics: Sendable, Hashable {
        /// Data messages posted.
        public var messagesSent = 0
        /// Of those, sent from registered memory without a copy.
        public var zeroCopySends = 0
        /// Of those, sent inline.
        public var inlineSends = 0
        /// Of those, copied into registered memory first.
        public var copiedSends = 0
        /// Sends that asked for a completion.
        public var signaledSends = 0
        /// Credit-only messages posted.
        public var creditMessagesSent = 0
        /// Data messages received.
        public var messagesReceived = 0
        /// Credit-only messages received.
        public var creditMessagesReceived = 0
        /// Receives posted again after their message was released.
        public var receivesReposted = 0
        /// Sends that had to wait (no credit, or a full send queue).
        public var sendsDelayed = 0
        /// Receives whose message arrived while they busy polled (``Configuration/busyPolling``),
        /// without waiting for a completion event; with a receive handler, messages the core
        /// found polling while idle.
        public var busyPolledReceives = 0
        /// Of the messages sent, those larger than the peer's receive buffer, sent by rendezvous
        /// (the peer read them from our memory).
        public var rendezvousSends = 0
        /// Of the messages received, those read by rendezvous.
        public var rendezvousReceives = 0
        /// Rendezvous done messages sent (each returns up to 16 tokens).
        public var doneMessagesSent = 0
        /// One-sided RDMA READs and WRITEs posted.
        public var oneSidedOperations = 0
        /// Batches of them posted (each signaled once).
        public var oneSidedBatches = 0
    }

    /// The connection's counters.
    @exclusivity(unchecked) public internal(set) var statistics = Statistics()

    /// What a posted work request still needs when the send queue retires it.
    enum InFlightWork {
        /// Memory a SEND reads (dropped when it completes).
        case message(Message)
        /// The two segments a gathering SEND reads.
        case pair(Message, Message)
        /// Memory a one-sided operation of a batch reads or writes (released when it completes).
        case memory(RegisteredBytes)
        /// The READ of a rendezvous message: the message is whole when it completes.
        case rendezvousRead(IncomingRead)
        /// The last (signaled) operation of a one-sided batch: its caller resumes.
        case batch(OneSidedBatch, RegisteredBytes)
    }

    /// A received message, in arrival order.
    enum Arrival {
        /// An eager message, over its receive buffer.
        case message(Message)
        /// A rendezvous message, ready once its READ completes.
        case read(IncomingRead)
    }

    /// A send waiting for a credit or a send-queue slot.
    final class PendingSend {
        enum State { case queued, posted, failed(TransportError) }
        let head: Message
        let body: Message
        var state = State.queued
        /// Queued by ``enqueue(_:_:)``: no caller waits to hear how it went, so its failure ends
        /// the connection.
        let detached: Bool
        init(_ head: Message, _ body: Message, detached: Bool = false) {
            self.head = head
            self.body = body
            self.detached = detached
        }
    }

    /// Creates the queue pair on `id` (whose address and route are resolved, or which came with a
    /// connect request) and posts every receive. `peer` is known at once on the accepting side;
    /// the dialling side learns it from the accept (``establish(peer:)``).
    init(id: UnsafeMutablePointer<rdma_cm_id>, events: CMEventQueue, context: RDMACoreContext,
         configuration: Configuration, peer: Handshake?) throws {
        let configuration = configuration.normalized
        let device = try context.device(for: id.pointee.verbs)
        let receiveCount = configuration.receiveDepth + configuration.reservedSlots
        let reserve = configuration.maximumOutstandingSends + receiveCount
        guard device.reserveCompletions(reserve) else {
            throw TransportError(.resourceExhausted, "the core's completion queue is full (\(device.completionCapacity) entries)")
        }
        var granted = ibv_qp_cap()
        guard crdma_create_qp(id, device.protectionDomain, device.completionQueue, UInt32(configuration.maximumOutstandingSends),
                              UInt32(receiveCount), UInt32(configuration.inlineThreshold), &granted) == 0,
              let qp = id.pointee.qp
        else {
            device.releaseCompletions(reserve)
            throw verbsError(.resourceExhausted, "rdma_create_qp")
        }
        var slots: [SlabAllocator.Chunk] = []
        do {
            for _ in 0..<receiveCount {
                guard let chunk = try device.slab.allocate(configuration.receiveBufferSize) else {
                    throw TransportError(.resourceExhausted, "registered memory for receive buffers ran out (\(receiveCount) x \(configuration.receiveBufferSize) bytes)")
                }
                slots.append(chunk)
            }
        } catch {
            for chunk in slots { device.slab.free(chunk) }
            rdma_destroy_qp(id)
            device.releaseCompletions(reserve)
            throw error
        }
        self.core = context.core
        self.configuration = configuration
        self.context = context
        self.device = device
        self.id = id
        self.events = events
        self.queuePair = qp
        self.inlineLimit = min(configuration.inlineThreshold, Int(granted.max_inline_data))
        self.busyPollNanoseconds = configuration.busyPolling.map { UInt64(max(0, $0.nanosecondsClamped)) }
        self.busyPollServiceNanoseconds = UInt64(max(0, configuration.busyPollingServiceInterval.nanosecondsClamped))
        self.completionsReserved = reserve
        let own = configuration
        let readDepth = Int(min(configuration.readDepth, device.maximumReadDepth))
        self.readDepth = readDepth
        let other = peer ?? Handshake(dataSlots: own.receiveDepth, reservedSlots: own.reservedSlots,
                                      receiveBufferSize: own.receiveBufferSize, maximumMessageSize: own.receiveBufferSize,
                                      creditReturnBatch: own.creditReturnBatch, rendezvous: false)
        self.flow = CreditFlowController(
            dataSlots: own.receiveDepth, reservedSlots: own.reservedSlots, peerDataSlots: other.dataSlots,
            peerReservedSlots: other.reservedSlots, creditReturnBatch: own.creditReturnBatch)
        self.signals = SendSignalPolicy(queueDepth: own.maximumOutstandingSends, batch: own.sendSignalBatch)
        self.peer = peer
        (self.maximumSendSize, self.eagerLimit) = Self.sendLimits(own: own, readDepth: readDepth, peer: other)
        self.inFlight = Array(repeating: nil, count: own.maximumOutstandingSends)
        self.senders = CoreWaitQueue(core: context.core)
        self.oneSidedWaiters = CoreWaitQueue(core: context.core)
        self.receivers = CoreWaitQueue(core: context.core)
        self.slots = slots
        self.receiveLender = ReceiveBufferLender(slab: device.slab, chunks: slots)
        self.slotPosted = CoreList(repeating: false, count: slots.count)
        self.number = try context.register(self)
        receiveLender.transport = Unmanaged.passUnretained(self)
        AsyncEvents.register(device: UInt(bitPattern: device.verbs), queuePair: qp.pointee.qp_num,
                             core: context.core, connection: number)
        for slot in slots.indices {
            guard post(slot: slot) else {
                let error = verbsError(.resourceExhausted, "ibv_post_recv")
                teardown()
                throw error
            }
        }
    }

    deinit {
        if pollsWhileIdle { context.stopIdlePolling() }  // dropped with its handler, before its end
        teardown()
        receiveLender.transport = nil  // messages may outlive the connection
    }

    /// Applies the peer's handshake (on the dialling side, from the accept) and handles the
    /// completions that arrived before it.
    func establish(peer: Handshake) {
        let own = configuration
        self.peer = peer
        flow = CreditFlowController(
            dataSlots: own.receiveDepth, reservedSlots: own.reservedSlots, peerDataSlots: peer.dataSlots,
            peerReservedSlots: peer.reservedSlots, creditReturnBatch: own.creditReturnBatch)
        (maximumSendSize, eagerLimit) = Self.sendLimits(own: own, readDepth: readDepth, peer: peer)
        let waiting = early
        early.removeAll()
        for completion in waiting { completed(completion) }
    }

    /// The largest message we may send, and the largest we send eagerly, given the peer's
    /// handshake: rendezvous needs both sides to speak it (and READs to be allowed).
    static func sendLimits(own: Configuration, readDepth: Int, peer: Handshake) -> (maximum: Int, eager: Int) {
        let eager = min(own.maximumMessageSize, peer.receiveBufferSize)
        guard readDepth > 0, peer.rendezvous else { return (eager, eager) }
        return (min(own.maximumMessageSize, peer.maximumMessageSize), eager)
    }

    /// Routes the connection's later connection-manager events (disconnect, device removal) to it.
    func watchConnectionEvents() {
        // Not retained, and never called once freed: teardown (which deinit runs) clears it. A
        // weak capture would cost the transport a side table, and every retain and release a
        // lookup there.
        events.handler = { [unowned(unsafe) self] event in self.connectionEvent(event) }
        localAddress = Self.address(rdma_get_local_addr(id))
        peerAddress = Self.address(rdma_get_peer_addr(id))
    }

    static func address(_ raw: UnsafeMutablePointer<sockaddr>?) -> SocketAddress? {
        guard let raw else { return nil }
        var storage = sockaddr_storage()
        let family = Int32(raw.pointee.sa_family)
        let length = family == AF_INET6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: length)) }
        return SocketAddress(storage: storage, length: socklen_t(length))
    }

    /// The handshake this side sends.
    var ownHandshake: Handshake {
        Handshake(dataSlots: configuration.receiveDepth, reservedSlots: configuration.reservedSlots,
                  receiveBufferSize: configuration.receiveBufferSize,
                  maximumMessageSize: readDepth > 0 ? configuration.maximumMessageSize : configuration.receiveBufferSize,
                  creditReturnBatch: configuration.creditReturnBatch, rendezvous: readDepth > 0)
    }

    /// Whether the connection is still usable.
    public var isOpen: Bool {
        // A pattern, not `failure == nil`, which loads the whole optional error (seven words) and
        // copies it when one is set; the pattern tests its tag (a busy poll asks every poll).
        if case .none = failure { true } else { false }
    }

    /// Credits left: receives the peer has posted for us (the last few kept for credit returns).
    public var credits: Int { flow.credits }

    /// Sends waiting for a credit or a send-queue slot.
    public var queuedSends: Int { pending.count }

    /// Received messages not yet taken by ``recv()`` (rendezvous messages being read included).
    public var queuedReceives: Int { ready.count }

    /// The largest message this connection sends (negotiated with the peer).
    public var maximumMessageSize: Int { maximumSendSize }

    /// The counters of the core's registration cache on this device (``RegistrationCache``).
    public var registrationStatistics: RegistrationCache.Statistics { device.registrations.statistics }

    /// The core's registered memory, as a buffer pool.
    public var bufferPool: RDMABufferPool { device.bufferPool }

    /// A buffer in the core's registered memory (see ``RDMABufferPool``): a message built in it
    /// is sent without a copy.
    public func allocateBuffer(capacity: Int) -> WritableBuffer {
        bufferPool.allocate(capacity: capacity)
    }

    /// Throws why the connection ended, if it has.
    @inline(__always)
    func checkOpen() throws(TransportError) {
        if let failure { throw failure }
    }
}
