#if canImport(Glibc)
import Glibc
#endif
import CRDMA
import NetRuntime
import NetTransport

extension RDMATransport {
    /// Closes the connection gracefully: waits up to `closeTimeout` for queued sends and sends in
    /// flight (a last signaled message tells when they have all gone), then disconnects. Pending
    /// and later calls fail with ``TransportError/Code/closed``.
    public func close() async {
        let deadline = Deadline.now + configuration.closeTimeout
        while failure == nil, !pending.isEmpty || signals.inFlight > 0, !deadline.hasPassed {
            if pending.isEmpty && signals.unsignaledRun > 0 {
                // Unsignaled sends never complete on their own: one signaled message retires them.
                returnCreditsIfDue(force: true)
            }
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
        guard failure == nil else { return }
        failure = error
        let failed = pending
        pending.removeAll()
        for entry in failed { entry.state = .failed(error) }
        senders.signalAll()
        receivers.signalAll()
        teardown()
    }

    /// Disconnects and frees the verbs resources. Receive buffers still held by messages go back
    /// to the slab when the messages are released.
    func teardown() {
        guard !tornDown else { return }
        tornDown = true
        events.handler = nil
        rdma_disconnect(id)
        rdma_destroy_qp(id)
        context.unregister(connection: number)
        context.unregister(id)
        device.releaseCompletions(completionsReserved)
        for slot in slots.indices where slotPosted[slot] {
            slotPosted[slot] = false
            device.slab.free(slots[slot])
        }
        _ = signals.retireAll()
        for index in inFlightMessages.indices { inFlightMessages[index] = nil }
        early.removeAll()
        rdma_destroy_id(id)
    }
}
