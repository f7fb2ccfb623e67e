import CRDMA
import NetTransport

extension RDMATransport {
    /// Handles one work completion routed to this connection by its `wr_id`.
    func completed(_ completion: WorkCompletion) {
        // Before the peer's handshake is known (the dialling side, between the peer's accept and
        // our ESTABLISHED event) a message may already have arrived: keep it for later.
        guard peer != nil else {
            early.append(completion)
            return
        }
        if completion.id.isSend {
            sendCompleted(completion)
        } else {
            receiveCompleted(completion)
        }
    }

    /// Handles a connection-manager event after the connection is up.
    func connectionEvent(_ event: CMEvent) {
        switch event.type {
        case RDMA_CM_EVENT_DISCONNECTED:
            // librdmacm has moved the queue pair to the error state: everything that arrived
            // before is in the completion queue, ahead of the flushed work requests. Deliver it
            // first; a send flushed now means the peer left mid-transfer.
            peerDisconnecting = true
            context.drainCompletions(of: device)
            let midTransfer = sendsLost || !pending.isEmpty
            fail(TransportError(midTransfer ? .connectionReset : .closed,
                                midTransfer ? "the peer disconnected with sends in flight" : "the peer closed the connection"))
        case RDMA_CM_EVENT_DEVICE_REMOVAL:
            fail(TransportError(.connectionReset, "the RDMA device was removed"))
        default:
            break
        }
    }
}
