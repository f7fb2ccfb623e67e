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
        try checkOpen()
        guard message.count > 0 else { throw TransportError(.malformedFrame, "an empty message") }
        guard message.count <= maximumSendSize else {
            throw TransportError(.frameTooLarge, "a message of \(message.count) bytes, above the maximum of \(maximumSendSize)")
        }
        if pending.isEmpty && canPostData {
            try postData(message)
            return
        }
        let entry = PendingSend(message)
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

    /// Whether a data message may be posted now.
    var canPostData: Bool {
        signals.canPost && (flow.canSendData || (ignoresCreditsForTesting && flow.canSendCreditReturn))
    }

    /// Posts queued sends while credits and send-queue slots allow, then a credit return if one
    /// is due. Called whenever credits come back or sends complete.
    func postQueued() {
        var posted = false
        while let entry = pending.first, canPostData, failure == nil {
            pending.removeFirst()
            do {
                try postData(entry.message)
                entry.state = .posted
            } catch {
                entry.state = .failed(error)
            }
            posted = true
        }
        if posted { senders.signalAll() }
        returnCreditsIfDue()
    }

    /// Posts one data message, returning in its immediate data every credit waiting to go back.
    func postData(_ message: Message) throws(TransportError) {
        // Find (or make) registered memory before any bookkeeping, so a failure changes nothing.
        let payload: Message
        var localKey: UInt32 = 0
        var flags: UInt32 = 0
        if message.count <= inlineLimit {
            payload = message
            flags |= CRDMA_SEND_INLINE
            statistics.inlineSends += 1
        } else if let base = message.baseAddress, let key = device.slab.localKey(for: base, count: message.count) {
            payload = message
            localKey = key
            statistics.zeroCopySends += 1
        } else {
            (payload, localKey) = try copyIntoRegisteredMemory(message)
            statistics.copiedSends += 1
        }
        let credits = ignoresCreditsForTesting && !flow.canSendData ? flow.creditReturnSent() : flow.dataSent()
        let (sequence, signaled) = signals.post()
        if signaled {
            flags |= CRDMA_SEND_SIGNALED
            statistics.signaledSends += 1
        }
        let immediate = ImmediateData(kind: .data, credits: credits).raw
        let status = crdma_post_send_imm(
            queuePair, WorkRequestID.send(connection: number, sequence: sequence).raw, payload.baseAddress,
            UInt32(payload.count), localKey, immediate, flags)
        guard status == 0 else {
            let error = verbsError(.connectionReset, "ibv_post_send", errno: status)
            fail(error)
            throw error
        }
        // Inline data was copied by the post; anything else is read by the device until the send
        // completes, so the message (and its memory) is kept until then.
        if flags & CRDMA_SEND_INLINE == 0 {
            inFlightMessages[Int(sequence % UInt64(inFlightMessages.count))] = payload
        }
        statistics.messagesSent += 1
    }

    /// A copy of `message` in a chunk of the registered slab, released with the message.
    private func copyIntoRegisteredMemory(_ message: Message) throws(TransportError) -> (Message, UInt32) {
        let slab = device.slab
        let chunk: SlabAllocator.Chunk?
        do {
            chunk = try slab.allocate(message.count)
        } catch let error as TransportError {
            throw error
        } catch {
            throw TransportError(.resourceExhausted, "registering memory failed: \(error)")
        }
        guard let chunk else {
            throw TransportError(.resourceExhausted, "no registered memory free for a \(message.count)-byte message")
        }
        message.withUnsafeBytes { bytes in
            chunk.base.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) // '!': count > 0
        }
        let storage = BufferStorage(wrapping: chunk.base, capacity: chunk.size) { slab.free(chunk) }
        return (Message(storage: storage, offset: 0, count: message.count), chunk.localKey)
    }

    /// Handles the completion of a send: a signaled one retires it and every earlier send, whose
    /// memory is then released; an error ends the connection.
    func sendCompleted(_ completion: WorkCompletion) {
        guard completion.succeeded else {
            if peerDisconnecting { sendsLost = true }
            if failure == nil && !peerDisconnecting {
                fail(TransportError(.connectionReset, "a send failed: \(completion.statusText) (vendor error \(completion.vendorError))"))
            }
            return
        }
        guard let retired = signals.completed(sequence: UInt64(completion.id.index), bits: WorkRequestID.sequenceBits) else {
            return
        }
        for sequence in retired {
            inFlightMessages[Int(sequence % UInt64(inFlightMessages.count))] = nil
        }
        if pending.isEmpty { senders.signalAll() } // a graceful close waits for this
        postQueued()
    }
}
