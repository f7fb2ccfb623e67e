/// Decides which sends ask for a completion (`IBV_SEND_SIGNALED`), and keeps count of the work
/// requests in the send queue: pure bookkeeping, testable without a device.
///
/// Unsignaled sends still hold send-queue slots until a later signaled send completes, so:
/// - a send is signaled at least every `batch` sends;
/// - the send that fills the queue is always signaled, so the unsignaled ones can never fill it
///   (brpc fixed exactly this overflow);
/// - a caller may force a signal (a graceful close does, to learn that everything went out).
/// A signaled completion retires it and every earlier send. A quiet connection thus holds at most
/// `batch - 1` sent buffers until its next signaled send.
public struct SendSignalPolicy: Sendable, Hashable {
    /// Send-queue depth: work requests in the queue at most.
    public let queueDepth: Int
    /// At most this many sends in a row are posted before one is signaled.
    public let batch: Int
    /// Work requests posted and not yet retired by a signaled completion.
    public private(set) var inFlight = 0
    /// Unsignaled sends posted since the last signaled one.
    public private(set) var unsignaledRun = 0
    /// The sequence number the next send gets.
    public private(set) var nextSequence: UInt64 = 0
    /// The oldest sequence number not yet retired.
    public private(set) var oldestInFlight: UInt64 = 0

    /// A policy for a queue of `queueDepth` slots signalling at least every `batch` sends.
    public init(queueDepth: Int, batch: Int) {
        precondition(queueDepth >= 1, "a send queue needs a slot")
        self.queueDepth = queueDepth
        self.batch = min(max(1, batch), queueDepth)
    }

    /// Whether the queue has a free slot.
    public var canPost: Bool { inFlight < queueDepth }

    /// Records a send posted; returns its sequence number and whether it must be signaled.
    /// - Parameter forceSignal: signal this send whatever the batch says.
    public mutating func post(forceSignal: Bool = false) -> (sequence: UInt64, signaled: Bool) {
        precondition(canPost, "the send queue is full")
        inFlight += 1
        let signaled = forceSignal || unsignaledRun + 1 >= batch || inFlight == queueDepth
        unsignaledRun = signaled ? 0 : unsignaledRun + 1
        let sequence = nextSequence
        nextSequence &+= 1
        return (sequence, signaled)
    }

    /// Records the completion of the signaled send `sequence` (only the low `bits` bits are
    /// known): it and every earlier send are retired. Returns the sequence numbers retired, or
    /// `nil` when `sequence` is not in flight (a corrupt or stale completion).
    public mutating func completed(sequence low: UInt64, bits: Int) -> Range<UInt64>? {
        let mask: UInt64 = bits >= 64 ? .max : (1 << UInt64(bits)) - 1
        let offset = (low &- oldestInFlight) & mask
        guard offset < UInt64(inFlight) else { return nil }
        let retired = oldestInFlight..<(oldestInFlight + offset + 1)
        oldestInFlight += offset + 1
        inFlight -= Int(offset + 1)
        return retired
    }

    /// Retires everything (the queue pair is gone); returns what was in flight.
    public mutating func retireAll() -> Range<UInt64> {
        let retired = oldestInFlight..<nextSequence
        oldestInFlight = nextSequence
        inFlight = 0
        unsignaledRun = 0
        return retired
    }
}
