import CRDMA
import NetRuntime
public import NetTransport

extension RDMATransport {
    /// Sends `message` as one RDMA SEND. See ``RDMATransport`` for ordering and waiting.
    ///
    /// - Throws: ``TransportError`` `.malformedFrame` for an empty message, `.frameTooLarge`
    ///   above the negotiated maximum, `.resourceExhausted` when registered memory for a copy ran
    ///   out, or why the connection ended; `CancellationError` if cancelled while waiting (the
    ///   message is then not sent).
    public func send(_ message: Message) async throws {
        try await send(message, Message())
    }

    /// Sends `head` then `body` as one message, gathered without a copy: one SEND of two
    /// segments when both lie in registered memory (or the whole fits inline), or a rendezvous
    /// of two segments that the peer reads into one buffer. Throws as ``send(_:)``.
    public func send(_ head: Message, _ body: Message) async throws {
        if try trySend(head, body) { return }
        let entry = PendingSend(head, body)
        pending.append(entry)
        statistics.sendsDelayed += 1
        while case .queued = entry.state {
            do {
                try await senders.wait()
            } catch {
                if case .queued = entry.state, let index = pending.firstIndex(where: { $0 === entry }) {
                    pending.remove(at: index)
                    throw error
                }
            }
        }
        if case .failed(let error) = entry.state { throw error }
    }

    /// Posts `head` then `body` as one message, as ``send(_:_:)`` does, if that needs no wait:
    /// nothing queued before it, and a credit and a send-queue slot free. Otherwise returns
    /// false and posts nothing.
    public func trySend(_ head: Message, _ body: Message) throws(TransportError) -> Bool {
        try checkOpen()
        let count = head.count + body.count
        guard count > 0 else { throw TransportError(.malformedFrame, "an empty message") }
        guard count <= maximumSendSize else {
            throw TransportError(.frameTooLarge, "a message of \(count) bytes, above the maximum of \(maximumSendSize)")
        }
        guard pending.isEmpty && readTokens.isEmpty && canPostData else { return false }
        try postData(head, body)
        return true
    }

    /// Whether a data message may be posted now.
    var canPostData: Bool {
        signals.canPost && (flow.canSendData || (ignoresCreditsForTesting && flow.canSendCreditReturn))
    }

    /// Posts what waits, while credits and send-queue slots allow: READs of rendezvous messages
    /// first (they need no credit), then done messages, queued sends, and a credit return if one
    /// is due. Called whenever credits come back or sends complete.
    func postQueued() {
        postQueuedReads()
        postDoneMessages()
        var posted = false
        var lost: TransportError?
        while let entry = pending.first, canPostData, isOpen {
            pending.removeFirst()
            do {
                try postData(entry.head, entry.body)
                entry.state = .posted
            } catch {
                entry.state = .failed(error)
                if entry.detached { lost = error }
            }
            posted = true
        }
        if posted { senders.signalAll() }
        if let lost {
            fail(TransportError(lost.code, "a queued send failed: \(lost.message)", underlying: lost.underlying))
            return
        }
        returnCreditsIfDue()
    }

    /// Posts one data message of `head` then `body` (eagerly, or by rendezvous above the peer's
    /// receive buffer), returning in its immediate data every credit waiting to go back.
    func postData(_ head: Message, _ body: Message) throws(TransportError) {
        let count = head.count + body.count
        if count > eagerLimit {
            try postRendezvous(head, body)
            return
        }
        // Find (or make) registered memory before any bookkeeping, so a failure changes nothing.
        if count <= inlineLimit {
            try postSend(.data, head, 0, body, 0, flags: CRDMA_SEND_INLINE)
            statistics.inlineSends += 1
        } else if let headKey = slabKey(head), let bodyKey = slabKey(body) {
            try postSend(.data, head, headKey, body, bodyKey, flags: 0)
            statistics.zeroCopySends += 1
        } else {
            let (payload, localKey) = try copyIntoRegisteredMemory(head, body)
            try postSend(.data, payload, localKey, Message(), 0, flags: 0)
            statistics.copiedSends += 1
        }
        statistics.messagesSent += 1
    }

    /// The local key of the slab region holding `message` (0 for an empty one), or `nil` when it
    /// does not lie in the core's slab.
    private func slabKey(_ message: Message) -> UInt32? {
        guard !message.isEmpty else { return 0 }
        guard let base = message.baseAddress else { return nil }
        return device.slab.localKey(for: base, count: message.count)
    }

    /// Posts one SEND of `kind` (a data-credit message: data, rendezvous or done) carrying the
    /// credits owed; `payload` is kept until the send completes unless it went inline.
    func postSend(_ kind: ImmediateData.Kind, payload: Message, localKey: UInt32, flags: UInt32) throws(TransportError) {
        try postSend(kind, payload, localKey, Message(), 0, flags: flags)
    }

    /// Posts one SEND of `kind` gathering `first` then `second` (which may be empty), carrying
    /// the credits owed; both are kept until the send completes unless it went inline.
    func postSend(_ kind: ImmediateData.Kind, _ first: Message, _ firstKey: UInt32, _ second: Message, _ secondKey: UInt32,
                  flags: UInt32) throws(TransportError) {
        var flags = flags
        let credits = ignoresCreditsForTesting && !flow.canSendData ? flow.creditReturnSent() : flow.dataSent()
        let (sequence, signaled) = signals.post()
        if signaled {
            flags |= CRDMA_SEND_SIGNALED
            statistics.signaledSends += 1
        }
        let immediate = ImmediateData(kind: kind, credits: credits).raw
        let status = crdma_post_send_imm2(
            queuePair, WorkRequestID.send(connection: number, sequence: sequence).raw,
            first.baseAddress, UInt32(first.count), firstKey, second.baseAddress, UInt32(second.count), secondKey,
            immediate, flags)
        guard status == 0 else {
            let error = verbsError(.connectionReset, "ibv_post_send", errno: status)
            fail(error)
            throw error
        }
        // Inline data was copied by the post; anything else is read by the device until the send
        // completes, so the messages (and their memory) are kept until then.
        if flags & CRDMA_SEND_INLINE == 0 {
            inFlight[slot(of: sequence)] = second.isEmpty ? .message(first) : .pair(first, second)
        }
    }

    /// A control payload of at most `capacity` bytes built by `build`: sent inline when the
    /// device allows, else from a slab chunk.
    func controlPayload(capacity: Int, _ build: (UnsafeMutableRawPointer) -> Int) throws(TransportError) -> (Message, UInt32, UInt32) {
        if capacity <= inlineLimit {
            let storage = BufferStorage(allocating: capacity)
            let count = build(storage.base)
            return (Message(storage: storage, offset: 0, count: count), 0, CRDMA_SEND_INLINE)
        }
        let (storage, localKey, _) = try device.allocateRegistered(capacity)
        let count = build(storage.base)
        return (Message(storage: storage, offset: 0, count: count), localKey, 0)
    }

    /// The `inFlight` index of send-queue sequence number `sequence`.
    @inline(__always)
    func slot(of sequence: UInt64) -> Int { Int(sequence % UInt64(inFlight.count)) }

    /// A copy of `head` then `body` in registered memory, released with the message.
    private func copyIntoRegisteredMemory(_ head: Message, _ body: Message) throws(TransportError) -> (Message, UInt32) {
        let count = head.count + body.count
        let (storage, localKey, _) = try device.allocateRegistered(count)
        head.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress { storage.base.copyMemory(from: base, byteCount: bytes.count) }
        }
        body.withUnsafeBytes { bytes in
            if let base = bytes.baseAddress { (storage.base + head.count).copyMemory(from: base, byteCount: bytes.count) }
        }
        return (Message(storage: storage, offset: 0, count: count), localKey)
    }

    /// Handles the completion of a send-queue work request: a signaled one retires it and every
    /// earlier one (their memory is released, READs and batches finish); an error ends the
    /// connection.
    func sendCompleted(_ completion: WorkCompletion) {
        guard completion.succeeded else {
            if peerDisconnecting { sendsLost = true }
            if isOpen && !peerDisconnecting {
                fail(TransportError(.connectionReset, "a send-queue work request failed: \(completion.statusText) (vendor error \(completion.vendorError))"))
            }
            return
        }
        guard let retired = signals.completed(sequence: UInt64(completion.id.index), bits: WorkRequestID.sequenceBits) else {
            return
        }
        for sequence in retired {
            let index = slot(of: sequence)
            guard let work = inFlight[index] else { continue }
            inFlight[index] = nil
            retire(work)
        }
        if pending.isEmpty { senders.signalAll() } // a graceful close waits for this
        oneSidedWaiters.signalAll()
        postQueued()
    }

    /// A work request is done: release what it held, finish what waited for it.
    func retire(_ work: InFlightWork) {
        switch work {
        case .message, .pair:
            break
        case .memory(let bytes):
            device.release(bytes)
        case .rendezvousRead(let read):
            readCompleted(read)
        case .batch(let batch, let bytes):
            device.release(bytes)
            batch.finish(nil)
        }
    }
}
