@testable import NetRDMA
import NetTestSupport
import Testing

@Suite("RDMA send-signal batching")
struct RDMASignalBatchingTests {
    @Test("One send in every batch is signaled")
    func batch() {
        var policy = SendSignalPolicy(queueDepth: 64, batch: 4)
        let signaled = (0..<12).map { _ in policy.post().signaled }
        #expect(signaled == [false, false, false, true, false, false, false, true, false, false, false, true])
    }

    @Test("The send that fills the queue is signaled even mid-batch")
    func fullQueue() {
        var policy = SendSignalPolicy(queueDepth: 3, batch: 16)
        #expect(policy.post().signaled == false)
        #expect(policy.post().signaled == false)
        #expect(policy.post().signaled == true)
        #expect(!policy.canPost)
        #expect(policy.completed(sequence: 2, bits: 31) == 0..<3)
        #expect(policy.canPost && policy.inFlight == 0)
    }

    @Test("A forced signal is signaled; the batch is clamped to the queue depth")
    func forced() {
        var policy = SendSignalPolicy(queueDepth: 4, batch: 100)
        #expect(policy.batch == 4)
        #expect(policy.post(forceSignal: true).signaled)
    }

    @Test("A completion outside the sends in flight is ignored")
    func stale() {
        var policy = SendSignalPolicy(queueDepth: 8, batch: 2)
        _ = policy.post()
        _ = policy.post()
        #expect(policy.completed(sequence: 5, bits: 31) == nil)
        #expect(policy.inFlight == 2)
    }

    @Test("Random posts and completions: the unsignaled never fill the queue, retirement is exact",
          arguments: [(1, 8, 4), (2, 3, 3), (3, 128, 16), (4, 5, 100), (5, 2, 1)] as [(UInt64, Int, Int)])
    func random(seed: UInt64, depth: Int, batch: Int) {
        var random = SeededGenerator(seed: seed)
        var policy = SendSignalPolicy(queueDepth: depth, batch: batch)
        var signaledInFlight: [UInt64] = []   // signaled sends not yet completed, in order
        var posted: UInt64 = 0
        var retired: UInt64 = 0
        // Sequence numbers wrap in the 31-bit wr_id field: start near the wrap.
        for _ in 0..<20_000 {
            if policy.canPost && random.next() % 2 == 0 {
                let (sequence, signaled) = policy.post()
                #expect(sequence == posted)
                posted += 1
                if signaled { signaledInFlight.append(sequence) }
                // Whenever the queue is full, a signaled send is in it: a completion will come.
                if !policy.canPost { #expect(!signaledInFlight.isEmpty) }
                #expect(policy.unsignaledRun < min(batch, depth))
            } else if !signaledInFlight.isEmpty {
                let sequence = signaledInFlight.removeFirst()
                let range = policy.completed(sequence: sequence & 0x7FFF_FFFF, bits: 31)
                #expect(range == retired..<(sequence + 1))
                retired = sequence + 1
            }
            #expect(policy.inFlight == Int(posted - retired))
            #expect(policy.inFlight <= depth)
        }
    }
}
