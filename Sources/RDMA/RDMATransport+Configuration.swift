extension RDMATransport {
    /// How RDMA connections behave (the Rust crate's `TransportConfig`, plus the limits it left
    /// implicit). Every limit has a safe default; ``defaults`` lists them.
    public struct Configuration: Sendable, Hashable {
        /// Send-queue depth: sends posted and not yet completed, at most. Default 128.
        public var maximumOutstandingSends: Int = 128
        /// A send is signaled (asks for a completion) at least every this many sends. Default 16;
        /// clamped to `maximumOutstandingSends`, and to half the receive buffers not kept for
        /// credit returns (`(receiveDepth - creditReturnBatch) / 2`, at least 1): an unsignaled
        /// send of a received message (a zero-copy echo) holds its receive buffer until a signaled
        /// one completes, and a run of them must never hold the buffers the peer needs to send
        /// the request that would make the next send.
        public var sendSignalBatch: Int = 16
        /// Receives posted for data: the credits the peer gets. Default 64.
        public var receiveDepth: Int = 64
        /// Reposted receives returned to the peer in one credit-only message, when no data
        /// message carries them first. Also the number of extra receives kept for the peer's
        /// credit returns. Default 8; at least 2 (see ``CreditFlowController``).
        public var creditReturnBatch: Int = 8
        /// Bytes of each receive buffer: messages up to this size (the peer's) go eagerly, as one
        /// SEND into a posted receive; larger ones by rendezvous (the receiver RDMA-READs them
        /// from the sender's registered memory into its own). Default 64 KiB.
        public var receiveBufferSize: Int = 64 * 1024
        /// The largest message, sent or received, in bytes. Default 16 MiB (as TCP's frames).
        /// Above ``receiveBufferSize`` a message is received into fresh registered memory: a
        /// slab chunk, or memory registered for it alone above the slab's largest class.
        public var maximumMessageSize: Int = 16 * 1024 * 1024
        /// Registrations of buffers from elsewhere that are kept (``RegistrationCache``), so a
        /// large message sent again from the same buffer is not registered again. Taken from the
        /// first connection made on the core. Default 256 entries, 64 MiB.
        public var registrationCache: RegistrationCache.Limits = .defaults
        /// Messages up to this many bytes are copied into the work request (`IBV_SEND_INLINE`):
        /// no registered memory needed and no buffer held. Default 128; the device may grant less.
        public var inlineThreshold: Int = 128
        /// RC transport retries after a timeout before the send fails (how a lost peer shows).
        /// Default 7 (the most the verbs allow; each waits about 4 µs x 2^timeout).
        public var retryCount: UInt8 = 7
        /// Retries after "receiver not ready". Default 7, which means forever (0 would let one
        /// RNR NAK kill the connection).
        public var rnrRetryCount: UInt8 = 7
        /// Outstanding RDMA READs per connection (both initiator depth and responder
        /// resources). Default 8, lowered to what the device allows. 0 forbids READ: messages
        /// are then at most the peer's receive buffer (no rendezvous) and one-sided READs fail.
        public var readDepth: UInt8 = 8
        /// How long address and route resolution and the connect may take. Default 5 s.
        public var connectTimeout: Duration = .seconds(5)
        /// How long a graceful close waits for queued and in-flight sends. Default 2 s.
        public var closeTimeout: Duration = .seconds(2)
        /// Entries of the completion queue a core shares among its connections on one device;
        /// each connection reserves `maximumOutstandingSends + receiveDepth + creditReturnBatch`.
        /// Taken from the first connection made on the core. Default 16,384.
        public var completionQueueSize: Int = 16_384
        /// The core's registered slab (size classes, region size). Taken from the first
        /// connection made on the core. Default: 4 KiB, 64 KiB and 1 MiB classes in 16 MiB regions.
        public var slab: SlabAllocator.Configuration = .defaults
        /// Registered memory per slab size class that the core's buffer pool
        /// (``RDMATransport/allocateBuffer(capacity:)``) keeps for reuse: a buffer then costs no
        /// allocation. Past it, a buffer still gets a slab chunk, at the cost of one allocation,
        /// and its chunk goes back to the slab when the buffer goes. Taken from the first
        /// connection made on the core. Default 4 MiB (1,024 buffers of 4 KiB, 64 of 64 KiB, 4 of
        /// 1 MiB); 0 keeps none.
        public var pooledBytesPerClass: Int = 4 * 1024 * 1024
        /// How long a receive with nothing to read polls the completion queue itself (yielding to
        /// the core's other tasks between polls) before it waits for a completion event; `nil`
        /// (the default) waits at once, and so does zero or a negative time. Busy polling trades
        /// a core's CPU for latency.
        public var busyPolling: Duration?
        /// While a receive busy polls, how often at most it lets the core serve its ring (other
        /// connections' I/O, timers) when no other task waits for the core: a yield costs far
        /// more than a poll, and a message that lands during one waits for it. Looked at with
        /// each clock read (every 64th poll). Default 50 µs; at least 1 µs.
        public var busyPollingServiceInterval: Duration = .microseconds(50)
        /// Sends that may wait for credits or send-queue slots when queued by
        /// ``RDMATransport/enqueue(_:_:)`` (sends awaited by tasks count too): past it, `enqueue`
        /// throws `.resourceExhausted`. Default 1,024; at least 1.
        public var maximumQueuedSends: Int = 1024
        /// The listen backlog. Default 1024.
        public var backlog: Int32 = 1024

        /// The defaults.
        public init() {}

        /// The defaults with a tweak: `.defaults { $0.receiveDepth = 16 }`.
        public static func defaults(_ configure: (inout Configuration) -> Void = { _ in }) -> Configuration {
            var configuration = Configuration()
            configure(&configuration)
            return configuration
        }

        /// The defaults.
        public static var defaults: Configuration { Configuration() }

        /// The configuration with every value brought into its valid range.
        var normalized: Configuration {
            var c = self
            c.maximumOutstandingSends = min(max(2, c.maximumOutstandingSends), 16_384)
            c.receiveDepth = min(max(2, c.receiveDepth), 16_384)
            c.creditReturnBatch = min(max(2, c.creditReturnBatch), c.receiveDepth)
            c.sendSignalBatch = min(max(1, c.sendSignalBatch), c.maximumOutstandingSends,
                                    max(1, (c.receiveDepth - c.creditReturnBatch) / 2))
            c.receiveBufferSize = min(max(64, c.receiveBufferSize), 1 << 30)
            c.maximumMessageSize = min(max(c.receiveBufferSize, c.maximumMessageSize), 1 << 30)
            c.inlineThreshold = min(max(0, c.inlineThreshold), 1024)
            c.pooledBytesPerClass = max(0, c.pooledBytesPerClass)
            c.maximumQueuedSends = max(1, c.maximumQueuedSends)
            c.retryCount = min(c.retryCount, 7)
            c.rnrRetryCount = min(c.rnrRetryCount, 7)
            if let spin = c.busyPolling, spin <= .zero { c.busyPolling = nil }
            c.busyPollingServiceInterval = max(c.busyPollingServiceInterval, .microseconds(1))
            return c
        }

        /// Receives kept for the peer's credit returns: one batch, enough to always let a
        /// credit return through (see ``CreditFlowController``).
        var reservedSlots: Int { creditReturnBatch }
    }
}
