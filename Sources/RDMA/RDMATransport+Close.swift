#if canImport(Glibc)
import Glibc
#endif
import CRDMA
import NetRuntime
import NetTransport

extension RDMATransport {
    /// Closes the connection gracefully: waits up to `closeTimeout` for queued sends, sends in
    /// flight (a last signaled message tells when they have all gone) and large messages the peer
    /// is still reading, then disconnects. Pending and later calls fail with
    /// ``TransportError/Code/closed``.
    public func close() async {
        let deadline = Deadline.now + configuration.closeTimeout
        while isOpen, !pending.isEmpty || signals.inFlight > 0 || !lent.isEmpty || !readTokens.isEmpty,
              !deadline.hasPassed {
            if pending.isEmpty { retireUnsignaledSends() }
            do {
                try await senders.wait(deadline: deadline)
            } catch {
                break
            }
        }
        fail(TransportError(.closed, "closed"))
    }

    /// Ends the connection with `error`: queued sends fail with it, waiting receivers wake, the
    /// queue pair is disconnected and destroyed. Idempotent.
    func fail(_ error: TransportError) {
        guard isOpen else { return }
        failure = error
        let failed = pending
        pending.removeAll()
        for entry in failed { entry.state = .failed(error) }
        teardown()
        senders.signalAll()
        receivers.signalAll()
        oneSidedWaiters.signalAll()
        if handler != nil { scheduleDelivery() }  // the end goes to the handler, after what arrived before it
    }

    /// Disconnects and frees the verbs resources. Receive buffers still held by messages go back
    /// to the slab when the messages are released.
    func teardown() {
        guard !tornDown else { return }
        tornDown = true
        events.handler = nil
        rdma_disconnect(id)
        AsyncEvents.unregister(device: UInt(bitPattern: device.verbs), queuePair: queuePair.pointee.qp_num)
        rdma_destroy_qp(id)
        context.unregister(connection: number)
        context.unregister(id)
        device.releaseCompletions(completionsReserved)
        for slot in slots.indices where slotPosted[slot] {
            slotPosted[slot] = false
            device.slab.free(slots[slot])
        }
        for slot in abandonedSlots { device.slab.free(slots[slot]) }
        abandonedSlots.removeAll()
        postReleasedReceives()  // torn down: to the slab
        // Work requests still posted will never complete now: release what they held and fail
        // the one-sided batches waiting on them.
        _ = signals.retireAll()
        let error = failure ?? TransportError(.closed, "closed")
        for index in inFlight.indices {
            guard let work = inFlight[index] else { continue }
            inFlight[index] = nil
            switch work {
            case .message, .pair, .rendezvousRead: break
            case .memory(let bytes): device.release(bytes)
            case .batch(let batch, let bytes):
                device.release(bytes)
                batch.finish(error)
            }
        }
        for parts in lent.values {
            for bytes in parts { device.release(bytes) }
        }
        lent.removeAll()
        // Requests never read still hold their receive buffers: no message will give them back.
        for read in pendingReads where read.message == nil { device.slab.free(slots[read.slot]) }
        pendingReads.removeAll()
        readTokens.removeAll()
        early.removeAll()
        rdma_destroy_id(id)
    }
}
