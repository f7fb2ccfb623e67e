import CRDMA
import NetTransport

extension RDMATransport {
    /// Unsignaled sends hold their send-queue slots until a later signaled one completes, which
    /// a quiet connection may never post: whatever waits for those slots (a graceful close, a
    /// one-sided batch, a rendezvous READ) posts one, a credit message, to retire them.
    func retireUnsignaledSends() {
        if isOpen && signals.unsignaledRun > 0 { returnCreditsIfDue(force: true) }
    }

    /// Where credits are returned when no data message carries them: once `creditReturnBatch`
    /// reposted receives are waiting, a credit-only message (no payload, inline) takes them back
    /// to the peer. It uses one of the peer's receives kept for this (see
    /// ``CreditFlowController``); data messages return credits in their immediate data for free.
    /// - Parameter force: send one signaled message whatever is owed (a graceful close uses it to
    ///   learn that every earlier send has completed).
    func returnCreditsIfDue(force: Bool = false) {
        while isOpen, flow.wantsCreditReturn || force,
              flow.canSendCreditReturn, signals.canPost {
            let credits = flow.creditReturnSent()
            let (sequence, signaled) = signals.post(forceSignal: force)
            var flags = CRDMA_SEND_INLINE
            if signaled {
                flags |= CRDMA_SEND_SIGNALED
                statistics.signaledSends += 1
            }
            let status = crdma_post_send_imm(
                queuePair, WorkRequestID.send(connection: number, sequence: sequence).raw, nil, 0, 0,
                ImmediateData(kind: .credits, credits: credits).raw, flags)
            guard status == 0 else {
                fail(verbsError(.connectionReset, "ibv_post_send", errno: status))
                return
            }
            statistics.creditMessagesSent += 1
            if force { return }
        }
    }
}
