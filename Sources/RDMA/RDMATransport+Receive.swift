import CRDMA
import NetRuntime
public import NetTransport

extension RDMATransport {
    /// Receives the next message, over the registered buffer it landed in (no copy)
    /// (``Transport/recv()`` is this, cancellable). With `cancellable` false, task cancellation
    /// does not end the wait (closing the connection and the core's stop do), and it costs no
    /// cancellation handler.
    ///
    /// Messages that arrived before the peer closed the connection are still returned; then
    /// the call throws why the connection ended.
    ///
    /// - Throws: ``TransportError`` `.closed` after a clean close (ours or the peer's),
    ///   `.connectionReset`, `.protocolViolation`, `.concurrentReceive` if another receive is in
    ///   progress; `CancellationError` if a cancellable receive is cancelled while waiting.
    @inline(__always)  // into its protocol witness: a receive through `Transport` takes no extra async frame
    public func recv(cancellable: Bool) async throws -> Message {
        guard !receiving else { throw TransportError(.concurrentReceive, "recv called while another recv is in progress") }
        receiving = true
        defer { receiving = false }
        if let spin = busyPollNanoseconds, isOpen {
            if let message = takeReadyMessage() { return message }
            if let message = await pollForMessage(forNanoseconds: spin) { return message }
        }
        while true {
            if let failure, failure.code != .closed { throw failure }
            if let message = takeReadyMessage() { return message }
            if let failure { throw failure }
            try await receivers.wait(cancellable: cancellable)
        }
    }

    /// Returns the next message if it has already arrived whole (see ``Transport/tryRecv()``).
    public func tryRecv() throws(TransportError) -> Message? {
        guard !receiving else { throw TransportError(.concurrentReceive, "tryRecv called while a recv is in progress") }
        if let failure, failure.code != .closed { throw failure }
        return takeReadyMessage()
    }

    /// The next message in order, if it is whole. Taken out of the queue, not copied and then
    /// removed (a copy retains the message's storage, the removal releases it): a rendezvous
    /// message still being read goes back to the front.
    func takeReadyMessage() -> Message? {
        guard let first = ready.popFirst() else { return nil }
        switch first {
        case .message(let message): return message
        case .read(let read):
            if read.isComplete { return read.message }
            ready.prepend(first)
            return nil
        }
    }

    /// Busy polling: drains the completion queue until a message is ready (found by this poll or
    /// by the core's completion task meanwhile), and returns it; nil when the connection ends or
    /// `duration` passes.
    ///
    /// It yields to the core only when needed, since a yield (a job, a task switch, often a
    /// system call to the ring) costs far more than a poll of an empty completion queue, and a
    /// message that lands during one waits for it: when another task waits for the core (looked
    /// at every 2nd poll), and once per ``Configuration/busyPollingServiceInterval`` so that the
    /// core's ring (other connections' I/O, timers) is served too. The clock is read every 64th
    /// poll, and the time starts at the first read: where the clock source makes every read a
    /// system call (many VMs) a read costs more than many polls, and a message that comes within
    /// 64 polls costs no read at all.
    @inline(__always)  // into `recv`: a busy-polled receive takes no async frame of its own
    private func pollForMessage(forNanoseconds duration: UInt64) async -> Message? {
        var deadline: UInt64?
        var nextService = UInt64.max
        var polls = 0
        while true {
            context.drainCompletions(of: device)
            guard isOpen else { return nil }  // the caller reports the end, as a waiting receive does
            if let message = takeReadyMessage() {
                statistics.busyPolledReceives += 1
                return message
            }
            polls &+= 1
            var serve = polls & 1 == 0 && core.hasQueuedJobs
            if polls & 63 == 0 {
                let now = Deadline.now.nanoseconds
                if let deadline {
                    if now >= deadline { return nil }
                } else {
                    deadline = now &+ duration
                    nextService = now &+ busyPollServiceNanoseconds
                }
                if now >= nextService {
                    serve = true
                    nextService = now &+ busyPollServiceNanoseconds
                }
            }
            if serve { await Task.yield() }
        }
    }

    /// Posts the receive buffer of `slot`; false if the post failed.
    func post(slot: Int) -> Bool {
        let chunk = slots[slot]
        let status = crdma_post_recv(
            queuePair, WorkRequestID.receive(connection: number, slot: slot).raw, chunk.base, UInt32(chunk.size), chunk.localKey)
        slotPosted[slot] = status == 0
        return status == 0
    }

    /// Handles a receive's completion: credits first (they may let queued sends go), then the
    /// message itself.
    func receiveCompleted(_ completion: WorkCompletion) {
        let slot = Int(completion.id.index)
        guard slots.indices.contains(slot) else { return }
        slotPosted[slot] = false
        // From here the slot's buffer is neither posted nor lent: each way out that does not
        // repost it or hand it to a message gives it up (`abandon`), or the slab would lose it.
        guard completion.succeeded else {
            if isOpen && !peerDisconnecting {
                fail(TransportError(.connectionReset, "a receive failed: \(completion.statusText) (vendor error \(completion.vendorError))"))
            }
            abandon(slot: slot)
            return
        }
        guard isOpen else {
            abandon(slot: slot)
            return
        }
        guard let raw = completion.immediate, let immediate = ImmediateData(raw: raw) else {
            violation("a message without valid immediate data", slot: slot)
            return
        }
        guard flow.creditsReturned(immediate.credits) == .accepted else {
            violation("the peer returned \(immediate.credits) credits, more than it has receives", slot: slot)
            return
        }
        switch immediate.kind {
        case .credits:
            statistics.creditMessagesReceived += 1
            guard flow.creditReturnReceived() == .accepted else {
                violation("the peer sent past its credits", slot: slot)
                return
            }
            repost(slot: slot)
        case .data:
            guard flow.dataReceived() == .accepted else {
                violation("the peer sent a message past its credits", slot: slot)
                return
            }
            guard completion.byteLength > 0 else {
                violation("an empty data message", slot: slot)
                return
            }
            statistics.messagesReceived += 1
            // The message refers to the receive buffer itself; releasing it reposts the buffer.
            let storage = receiveLender.storage(slot: slot, count: completion.byteLength)
            ready.append(.message(Message(storage: storage, offset: 0, count: completion.byteLength)))
            messagesArrived()
        case .rendezvous, .rendezvousDone:
            guard flow.dataReceived() == .accepted else {
                violation("the peer sent a message past its credits", slot: slot)
                return
            }
            // A small control payload, parsed from the receive buffer. A done message's buffer
            // goes back at once; a rendezvous request's stays with its message until the
            // application lets it go, so large messages are held back by credits as eager ones.
            let payload = UnsafeRawBufferPointer(start: slots[slot].base, count: completion.byteLength)
            do throws(TransportError) {
                if immediate.kind == .rendezvous {
                    guard let request = RendezvousRequest(parsing: payload) else {
                        throw TransportError(.protocolViolation, "a malformed rendezvous request (\(completion.byteLength) bytes)")
                    }
                    try rendezvousRequested(request, slot: slot)
                    postQueued()
                    return
                } else {
                    guard let tokens = RendezvousDone.parse(payload) else {
                        throw TransportError(.protocolViolation, "a malformed rendezvous done (\(completion.byteLength) bytes)")
                    }
                    try rendezvousDone(tokens)
                }
            } catch {
                fail(error)
                abandon(slot: slot)
                return
            }
            repost(slot: slot)
        }
        postQueued()
    }

    /// Ends the connection for a broken protocol, giving up the receive buffer that showed it.
    private func violation(_ text: String, slot: Int) {
        fail(TransportError(.protocolViolation, text))
        abandon(slot: slot)
    }

    /// A receive buffer that will be neither posted again nor lent to a message: back to the
    /// slab now if the connection is torn down, else at its teardown.
    func abandon(slot: Int) {
        if tornDown {
            device.slab.free(slots[slot])
        } else {
            abandonedSlots.append(slot)
        }
    }

    /// The last message over `slot`'s buffer is gone: it is posted again at the core's next poll
    /// of the completion queue or at the end of this turn, whichever comes first (once the
    /// connection is torn down, the chunk goes back to the slab at once).
    ///
    /// Deferred because a message is most often released just before the reply to it is sent: a
    /// repost then would delay the reply's doorbell, where after it the repost fills time the
    /// core spends waiting anyway. Credits are returned only for receives actually posted, so
    /// the peer never sends into a buffer not yet posted again.
    func released(slot: Int) {
        if tornDown {
            device.slab.free(slots[slot])
        } else if isOpen {
            if releasedSlots.isEmpty { context.repostLater(self) }
            releasedSlots.append(slot)
        }
    }

    /// Posts the receive buffers released since the last call again and returns their credits if
    /// due; once the connection is torn down, gives them back to the slab instead.
    func postReleasedReceives() {
        guard !releasedSlots.isEmpty else { return }
        var index = 0
        // By index: a failed post tears the connection down, and the rest then go to the slab.
        while index < releasedSlots.count {
            let slot = releasedSlots[index]
            index += 1
            if tornDown {
                device.slab.free(slots[slot])
            } else if isOpen {
                repost(slot: slot)
                statistics.receivesReposted += 1
            }
        }
        releasedSlots.removeAll()
        if !tornDown { returnCreditsIfDue() }
    }

    private func repost(slot: Int) {
        if post(slot: slot) {
            flow.receiveReposted()
        } else {
            fail(verbsError(.connectionReset, "ibv_post_recv"))
            abandon(slot: slot)
        }
    }
}
