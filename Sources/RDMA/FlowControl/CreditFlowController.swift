/// Credit-based flow control of one connection, both directions, as pure bookkeeping (no device):
/// a sender may only send while the peer has a receive posted for it.
///
/// Each side posts `dataSlots + reservedSlots` receives. A credit is one of the peer's posted
/// receives. Data may use a credit only while more than `peerReservedSlots` remain; the last
/// `peerReservedSlots` are kept for credit-return messages, which themselves consume a receive.
/// With `reservedSlots >= creditReturnBatch` a credit return can always be sent: the peer holds at
/// most `dataSlots` of our data messages in its application and fewer than `creditReturnBatch`
/// unreturned credits, so at least one credit is left (docs/RDMA.md works it through).
///
/// Credits come back piggybacked on every data message (in its immediate data), or, when
/// `creditReturnBatch` reposted receives are waiting and no data message is about to go, in a
/// credit-only message.
///
/// The batch is at least 2. A credit-only message consumes one of the peer's receives, which the
/// peer reposts at once and owes back; with a batch of 1 every credit return would trigger another,
/// forever, and eat the credit data needs. With 2 or more each return carries at least two credits
/// and causes at most one: the exchange dies out. The batch is also at most `dataSlots`: fewer
/// than a batch of reposted receives is all the peer may be owed at rest, and it must still have
/// a data credit left.
///
/// Credits are also returned at once, batch or not, when the peer may have no data credit left
/// (our bound of its credits is at or below our reserve): else an application holding
/// `dataSlots - 1` messages could wait forever for one held back in a batch. Two idle peers are
/// far above that bound, so they do not trade credit returns forever.
///
/// The receiving side also keeps an upper bound of the credits the peer can hold: a data message
/// that arrives when the bound is at or below our reserve means the peer sent past its credits.
public struct CreditFlowController: Sendable, Hashable {
    /// Credits the peer has granted us (its posted receives we have not used), counting the
    /// reserved ones.
    public private(set) var credits: Int
    /// How many of the peer's receives are kept for credit returns.
    public let peerReservedSlots: Int
    /// All the peer's receives: more credits than this cannot exist.
    public let peerSlots: Int
    /// How many of our receives are kept for the peer's credit returns.
    public let reservedSlots: Int
    /// Receives we reposted and have not yet told the peer about.
    public private(set) var pendingReturn = 0
    /// Pending returns that trigger a credit-only message (at least 2).
    public let creditReturnBatch: Int
    /// An upper bound of the credits the peer holds toward us.
    public private(set) var peerCreditsBound: Int

    /// What a receive means for flow control.
    public enum ReceiveVerdict: Sendable, Hashable {
        /// Within the peer's credits.
        case accepted
        /// The peer sent past its credits: a protocol violation.
        case overrun
    }

    /// A controller for a connection where we post `dataSlots + reservedSlots` receives and the
    /// peer posts `peerDataSlots + peerReservedSlots`.
    public init(dataSlots: Int, reservedSlots: Int, peerDataSlots: Int, peerReservedSlots: Int, creditReturnBatch: Int) {
        precondition(dataSlots >= 2 && reservedSlots >= 2 && peerDataSlots >= 1 && peerReservedSlots >= 1)
        self.credits = peerDataSlots + peerReservedSlots
        self.peerReservedSlots = peerReservedSlots
        self.peerSlots = peerDataSlots + peerReservedSlots
        self.reservedSlots = reservedSlots
        self.creditReturnBatch = min(max(2, creditReturnBatch), dataSlots)
        self.peerCreditsBound = dataSlots + reservedSlots
    }

    // MARK: Sending

    /// Whether a data message may be sent now.
    public var canSendData: Bool { credits > peerReservedSlots }

    /// Whether a credit-only message may be sent now.
    public var canSendCreditReturn: Bool { credits >= 1 }

    /// Whether enough reposted receives wait to be returned in a credit-only message (when no
    /// data message will carry them).
    public var wantsCreditReturn: Bool {
        pendingReturn >= creditReturnBatch || (pendingReturn > 0 && peerCreditsBound <= reservedSlots)
    }

    /// Records a data message posted; returns the credits it carries back to the peer.
    public mutating func dataSent() -> Int {
        precondition(canSendData, "a data message sent without a credit")
        credits -= 1
        return takeReturn()
    }

    /// Records a credit-only message posted; returns the credits it carries.
    public mutating func creditReturnSent() -> Int {
        precondition(canSendCreditReturn, "a credit return sent without a credit")
        credits -= 1
        return takeReturn()
    }

    /// Records credits the peer returned: `.overrun` if that would give us more credits than
    /// the peer has receives (it returned what it never had: sending on them would stall the
    /// connection in receiver-not-ready retries), and then nothing is recorded.
    @discardableResult
    public mutating func creditsReturned(_ count: Int) -> ReceiveVerdict {
        let count = max(0, count)
        guard count <= peerSlots - credits else { return .overrun }
        credits += count
        return .accepted
    }

    private mutating func takeReturn() -> Int {
        let returned = pendingReturn
        pendingReturn = 0
        peerCreditsBound += returned
        return returned
    }

    // MARK: Receiving

    /// Records a data message received and checks it against the peer's credits.
    public mutating func dataReceived() -> ReceiveVerdict {
        defer { peerCreditsBound -= 1 }
        return peerCreditsBound > reservedSlots ? .accepted : .overrun
    }

    /// Records a credit-only message received (its receive is reposted at once).
    public mutating func creditReturnReceived() -> ReceiveVerdict {
        defer { peerCreditsBound -= 1 }
        return peerCreditsBound >= 1 ? .accepted : .overrun
    }

    /// Records a receive posted again, to be returned to the peer.
    public mutating func receiveReposted() {
        pendingReturn += 1
    }
}
