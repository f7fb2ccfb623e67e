#if canImport(Glibc)
import Glibc
#endif
import DequeModule
public import NetRuntime
public import NetTransport

/// A TCP connection that sends and receives whole frames (docs/TCP.md), living on one core.
///
/// - Sending: any number of tasks on the core may send at once. Frames are queued whole and in
///   order; at the end of the core's turn everything queued leaves in one non-blocking vectored
///   send (header and payload as separate vectors: the payload is never copied), and what the
///   socket could not take is written by the connection's writer task through the ring, frames
///   queued meanwhile joining it. Past `maximumQueuedBytes` senders wait.
///   `send` returns once its frame is queued or written; a write failure closes the connection and
///   later calls throw it.
/// - Receiving: reads go into pooled chunks of `receiveChunkSize`; every whole frame in a chunk is
///   returned as a message over the chunk (no copy). A frame larger than a chunk is read straight
///   into storage of its own size.
public final class TCPTransport: Transport {
    public let core: Core
    public let configuration: TCPConfiguration
    public let localAddress: SocketAddress?
    public let peerAddress: SocketAddress?
    let fd: Int32
    let pool: TCPBufferPool

    // Hot state is confined to the core's thread (the type is not Sendable), so the dynamic
    // exclusivity checks Swift adds to class properties buy nothing here; they cost ~4 % of an
    // RPC client's CPU, counted across this type and the RPC connection.

    // Sending.
    @exclusivity(unchecked) var queue = Deque<OutgoingFrame>()
    var queuedBytes = 0
    /// Whether the writer task is inside a write (it then owns the queued frames' memory).
    var writing = false
    /// Whether the writer task has been started (the first time a write could not finish at once).
    var writerStarted = false
    /// Whether the end-of-turn write is scheduled on the core.
    var flushScheduled = false
    /// Bytes of the first queued frame already written (after a short write).
    var firstFrameSent = 0
    /// The core's handle on the end-of-turn write; holds the connection only while scheduled.
    let turnEnd = TurnEndFlush()
    /// The writer task while it waits for frames.
    var writerParked: UnsafeContinuation<Void, Never>?
    let roomForSenders: CoreWaitQueue
    let headers: UnsafeMutablePointer<UInt32>
    let vectors: UnsafeMutablePointer<iovec>
    /// Vectored sends made (for tests of write coalescing and for metrics).
    public internal(set) var writeCount = 0
    /// Frames sent.
    public internal(set) var framesSent = 0

    // Receiving.
    @exclusivity(unchecked) var chunk: BufferStorage?
    var readStart = 0
    var readEnd = 0
    var receiving = false
    /// A frame larger than a chunk, being received straight into storage of its own: what has
    /// arrived so far. Kept here, so that a receive cancelled inside it loses nothing.
    var largeFrame: (storage: BufferStorage, length: Int, received: Int)?
    /// Whether the receive handler waits before its next frame (``pauseReceiving()``).
    var receivePaused = false
    /// The receive handler's reads, once ``startReceiving(_:)`` has set one, until its end.
    var receivePump: TCPReceivePump?

    /// Why the connection ended, once it has.
    var failure: TransportError?
    /// Whether the descriptor has been closed (after `failure`, once no operation uses it).
    var descriptorClosed = false

    /// Wraps a connected socket the core owns.
    init(fd: Int32, core: Core, configuration: TCPConfiguration) throws {
        self.fd = fd
        self.core = core
        self.configuration = configuration
        self.pool = try TCPBufferPool.on(core)
        self.localAddress = try? Socket.localAddress(of: fd)
        self.peerAddress = try? Socket.peerAddress(of: fd)
        self.roomForSenders = CoreWaitQueue(core: core)
        let frames = max(configuration.maximumFramesPerWrite, 1)
        self.headers = .allocate(capacity: frames)
        self.vectors = .allocate(capacity: frames * 3)
        if configuration.noDelay { try Socket.setNoDelay(fd) }
        if let timeout = configuration.userTimeout {
            try Socket.setOption(fd, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, max(timeout.millisecondsClamped, 0))
        }
    }

    deinit {
        headers.deallocate()
        vectors.deallocate()
    }

    public var isOpen: Bool { failure == nil }

    public func allocateBuffer(capacity: Int) -> WritableBuffer {
        pool.allocate(capacity: capacity)
    }

    /// The buffer pool this connection's frames come from.
    public var bufferPool: TCPBufferPool { pool }

    /// Closes the connection. Frames already queued are written first, for at most
    /// ``TCPConfiguration/closeFlushTimeout`` (so a last error or go-away frame reaches the peer);
    /// then pending and later calls fail with ``TransportError/Code/closed``.
    public func close() async {
        let flushDeadline = Deadline.now + configuration.closeFlushTimeout
        while failure == nil && (!queue.isEmpty || writing) && !flushDeadline.hasPassed {
            do { try await roomForSenders.wait(deadline: flushDeadline) } catch { break }
        }
        await fail(TransportError(.closed, "closed"))
    }

    /// Ends the connection with `error`: waiting senders are woken and operations in flight are
    /// ended (shutdown, then cancellation). The descriptor itself is closed only once the writer
    /// and the receiver have returned, so neither can touch its number after it is reused.
    /// Idempotent.
    func fail(_ error: TransportError) async {
        guard failure == nil else { return }
        failure = error
        // A large frame left by a cancelled receive will never complete: free its storage now,
        // not when the transport is released (a receive in flight holds its own reference).
        largeFrame = nil
        // A write in flight still reads the queued frames: its writer drops them when it resumes.
        if !writing { dropQueue() } else { roomForSenders.signalAll() }
        receiveHandlerConnectionEnded()  // the end ends a receive handler's pause, and its reading
        wakeWriter()
        // Shutdown makes a pending or next send/recv on the socket fail at once; cancellation
        // covers what shutdown does not wake.
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
        try? core.cancelOperations(on: fd)
        await closeIfIdle()
    }

    /// Closes the descriptor once the connection has ended and no operation uses it.
    func closeIfIdle() async {
        guard failure != nil, !writing, !receiving, !descriptorClosed else { return }
        descriptorClosed = true
        try? await core.close(fd)
    }

    /// The end-of-turn write's entry point: a separate object, so the callback is not part of the
    /// connection's API, that holds the connection only from `send` to the turn's end.
    final class TurnEndFlush: CoreTurnEndAction {
        var transport: TCPTransport?
        func coreTurnDidEnd() {
            let transport = self.transport
            self.transport = nil
            transport?.flushQueued()
        }
    }

    /// Throws why the connection ended, if it has.
    @inline(__always)
    func checkOpen() throws(TransportError) {
        if let failure { throw failure }
    }
}
