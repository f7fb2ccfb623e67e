import CRDMA
import NetRuntime
import NetTransport

/// The rendezvous protocol, for messages larger than the peer's receive buffer (docs/RDMA.md):
///
/// 1. The sender finds the message registered memory (in place: the slab, or its own buffer
///    through the registration cache; a copy only when registering is refused) and sends a
///    small ``RendezvousRequest`` (a token, and address, length and remote key of each of its one
///    or two segments: a header and its payload need not be joined) as a data message, in order
///    with the others and under the same credits.
/// 2. The receiver takes registered memory of that length (a slab chunk, or memory registered
///    for it alone), RDMA-READs the message into it, and delivers it in its place in the order.
/// 3. The receiver returns the token in a ``RendezvousDone`` (up to 16 at once), and the sender
///    lets the memory go.
///
/// Both ends stay zero-copy: the receiver's message is the memory the READ wrote.
extension RDMATransport {
    /// A rendezvous message being read.
    final class IncomingRead {
        let request: RendezvousRequest
        /// The receive slot its request came in, held (with its credit) until the message goes.
        let slot: Int
        /// The message once read.
        var message: Message?
        var isComplete = false

        init(_ request: RendezvousRequest, slot: Int) {
            self.request = request
            self.slot = slot
        }
    }

    // MARK: Sender

    /// Lends `head` then `body` (one message, one or two segments) to the peer: registers them
    /// (or copies them) and posts the request.
    func postRendezvous(_ head: Message, _ body: Message) throws(TransportError) {
        var parts: [RegisteredBytes] = []
        do {
            for part in [head, body] where !part.isEmpty { parts.append(try device.registered(part)) }
        } catch {
            for bytes in parts { device.release(bytes) }
            throw error
        }
        var token = nextToken
        while lent[token] != nil { token &+= 1 }
        nextToken = token &+ 1
        let request = RendezvousRequest(token: token, segments: parts.map { bytes in
            .init(address: UInt64(UInt(bitPattern: bytes.message.baseAddress)), length: bytes.message.count,
                  remoteKey: bytes.remoteKey)
        })
        let payload: (Message, UInt32, UInt32)
        do {
            payload = try controlPayload(capacity: request.size) { request.encode(into: $0) }
        } catch {
            for bytes in parts { device.release(bytes) }
            throw error
        }
        lent[token] = parts
        do {
            try postSend(.rendezvous, payload: payload.0, localKey: payload.1, flags: payload.2)
        } catch {
            lent.removeValue(forKey: token)
            for bytes in parts { device.release(bytes) }
            throw error
        }
        statistics.messagesSent += 1
        statistics.rendezvousSends += 1
        let inPlace = zip([head, body].filter { !$0.isEmpty }, parts).allSatisfy { original, bytes in
            bytes.message.backingStorage === original.backingStorage
        }
        if inPlace {
            statistics.zeroCopySends += 1
        } else {
            statistics.copiedSends += 1
        }
    }

    /// The peer has read the messages of `tokens`: their memory goes.
    func rendezvousDone(_ tokens: [UInt32]) throws(TransportError) {
        for token in tokens {
            guard let parts = lent.removeValue(forKey: token) else {
                throw TransportError(.protocolViolation, "a rendezvous done for token \(token), which was never lent")
            }
            for bytes in parts { device.release(bytes) }
        }
        if lent.isEmpty { senders.signalAll() } // a graceful close waits for this
    }

    // MARK: Receiver

    /// A rendezvous request arrived in `slot`: the message takes its place in the order and is
    /// read as soon as the send queue has room. The slot is posted again when the message goes.
    func rendezvousRequested(_ request: RendezvousRequest, slot: Int) throws(TransportError) {
        guard readDepth > 0 else {
            throw TransportError(.protocolViolation, "a rendezvous message, which this side did not offer")
        }
        guard request.length <= configuration.maximumMessageSize else {
            throw TransportError(.protocolViolation,
                                 "a rendezvous message of \(request.length) bytes, above the maximum of \(configuration.maximumMessageSize)")
        }
        let read = IncomingRead(request, slot: slot)
        ready.append(.read(read))
        pendingReads.append(read)
    }

    /// Posts waiting READs while the send queue has room: one per segment, into consecutive
    /// bytes of one buffer, linked, the last signaled. Memory that cannot be had ends the
    /// connection (with the error, which names RLIMIT_MEMLOCK when that is why).
    func postQueuedReads() {
        while let read = pendingReads.first, isOpen,
              signals.inFlight + read.request.segments.count <= signals.queueDepth {
            pendingReads.removeFirst()
            let request = read.request
            let storage: BufferStorage, localKey: UInt32
            do {
                (storage, localKey, _) = try device.allocateRegistered(request.length)
            } catch {
                fail(error)
                abandon(slot: read.slot)  // out of the pending reads: the teardown would not see it
                return
            }
            // The message's storage holds the memory read into, and gives the request's receive
            // slot back when the application lets the message go.
            let (lender, receiveSlot) = (receiveLender, read.slot)
            let outer = BufferStorage(wrapping: storage.base, capacity: request.length) {
                withExtendedLifetime(storage) { lender.giveBack(slot: receiveSlot) }
            }
            read.message = Message(storage: outer, offset: 0, count: request.length)
            var operations: [crdma_rdma_op] = []
            var offset = 0
            var lastSequence: UInt64 = 0
            for (index, segment) in request.segments.enumerated() {
                let last = index == request.segments.count - 1
                let (sequence, signaled) = signals.post(forceSignal: last)
                if signaled { statistics.signaledSends += 1 }
                lastSequence = sequence
                operations.append(crdma_rdma_op(
                    wr_id: WorkRequestID.send(connection: number, sequence: sequence).raw,
                    local_address: UInt64(UInt(bitPattern: storage.base + offset)), remote_address: segment.address,
                    length: UInt32(segment.length), local_key: localKey, remote_key: segment.remoteKey,
                    is_write: 0, flags: signaled ? CRDMA_SEND_SIGNALED : 0))
                offset += segment.length
            }
            inFlight[slot(of: lastSequence)] = .rendezvousRead(read)
            let status = crdma_post_rdma(queuePair, operations, Int32(operations.count))
            guard status == 0 else {
                fail(verbsError(.connectionReset, "ibv_post_send (RDMA READ)", errno: status))
                return
            }
        }
        if !pendingReads.isEmpty { retireUnsignaledSends() }  // a read left waiting for room
    }

    /// A READ finished: the message is whole; its token goes back to the sender.
    func readCompleted(_ read: IncomingRead) {
        read.isComplete = true
        statistics.messagesReceived += 1
        statistics.rendezvousReceives += 1
        readTokens.append(read.request.token)
        messagesArrived()
    }

    /// Sends done messages for the messages read, while credits and the send queue allow.
    func postDoneMessages() {
        while !readTokens.isEmpty, canPostData, isOpen {
            let tokens = readTokens.prefix(RendezvousDone.maximumTokens)
            do {
                let payload = try controlPayload(capacity: RendezvousDone.maximumTokens * 4) { out in
                    RendezvousDone.encode(tokens, into: out)
                }
                try postSend(.rendezvousDone, payload: payload.0, localKey: payload.1, flags: payload.2)
            } catch {
                fail(error)
                return
            }
            readTokens.removeFirst(tokens.count)
            statistics.doneMessagesSent += 1
        }
    }

    // MARK: Tests

    /// Test hook: posts a message of `kind` with `payload` as it is (inline), to check how the
    /// peer takes a malformed or forged control message.
    func sendControlForTesting(_ kind: ImmediateData.Kind, _ payload: [UInt8]) throws(TransportError) {
        let message = try controlPayload(capacity: max(payload.count, 1)) { out in
            out.copyMemory(from: payload, byteCount: payload.count)
            return payload.count
        }
        try postSend(kind, payload: message.0, localKey: message.1, flags: message.2)
    }
}
