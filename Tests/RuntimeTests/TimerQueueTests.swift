@testable import NetRuntime
import Testing

@Suite("Timer queue")
struct TimerQueueTests {
    /// A queue with `deadlines` (nanoseconds) scheduled, in that order, as operations 0, 1, 2...
    private func scheduled(_ deadlines: [UInt64], action: TimerQueue.Action) -> TimerQueue {
        var queue = TimerQueue()
        for (i, deadline) in deadlines.enumerated() {
            queue.schedule(OperationID(index: UInt32(i), generation: 1), at: Deadline(nanoseconds: deadline), action: action)
        }
        return queue
    }

    /// Pops everything due by `now`, returning the operations' indexes in the order they came out.
    private func popAll(_ queue: inout TimerQueue, now: UInt64) -> [UInt32] {
        var out: [UInt32] = []
        while let entry = queue.popDue(now: now) { out.append(entry.operation.index) }
        return out
    }

    @Test("Entries come out in deadline order (ties in scheduling order), whether scheduled in order or not")
    func order() {
        // In order (the idle-timeout pattern), then out of order (short sleeps among them), and ties.
        let deadlines: [UInt64] = [100, 200, 200, 300, 50, 250, 400, 10, 300, 1_000]
        var queue = scheduled(deadlines, action: .wake)
        #expect(queue.count == deadlines.count)
        #expect(queue.earliest == 10)
        #expect(popAll(&queue, now: 5).isEmpty)
        #expect(popAll(&queue, now: 300) == [7, 4, 0, 1, 2, 5, 3, 8])
        #expect(queue.earliest == 400)
        #expect(popAll(&queue, now: .max) == [6, 9])
        #expect(queue.isEmpty && queue.earliest == nil)
    }

    @Test("Dropping ended entries at the front stops at the first live one, wherever the entries sit; a queue of ended ones empties")
    func dropEndedAtFront() {
        // In order, then out of order (heap): 3 (5) and 0 (10) are ended, 5 (15) is live.
        let deadlines: [UInt64] = [10, 20, 30, 5, 40, 15, 50]
        var queue = scheduled(deadlines, action: .timeout)
        let ended: Set<UInt32> = [0, 3, 1, 6]  // 1 (20) is ended but behind a live one: it stays
        queue.dropEndedAtFront { !ended.contains($0.index) }
        #expect(queue.earliest == 15)
        #expect(queue.count == 5)
        #expect(popAll(&queue, now: .max) == [5, 1, 2, 4, 6])
        queue = scheduled([10, 20], action: .expire)
        queue.dropEndedAtFront { _ in false }
        #expect(queue.isEmpty && queue.earliest == nil)
    }

    @Test("Dropping ended entries keeps the live ones, still in deadline order")
    func dropEnded() {
        let deadlines: [UInt64] = [10, 20, 30, 5, 40, 15, 50]
        var queue = scheduled(deadlines, action: .timeout)
        queue.dropEnded { $0.index % 2 == 0 }  // operations 0, 2, 4 and 6 are still live
        #expect(queue.count == 4)
        #expect(popAll(&queue, now: .max) == [0, 2, 4, 6])
        // The queue works on after a drop, in order and out of it.
        queue.schedule(OperationID(index: 7, generation: 1), at: Deadline(nanoseconds: 70), action: .wake)
        queue.schedule(OperationID(index: 8, generation: 1), at: Deadline(nanoseconds: 60), action: .wake)
        #expect(popAll(&queue, now: .max) == [8, 7])
    }
}
