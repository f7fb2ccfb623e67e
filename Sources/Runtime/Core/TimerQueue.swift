import DequeModule
import HeapModule

/// A core's timers: sleeps and operation deadlines, ordered by deadline.
///
/// Most entries come in deadline order: an idle timeout of minutes set on every receive is
/// "now + the same duration" each time. An entry at or past the latest one so far is appended to
/// a queue in O(1); only one that comes out of order (a short sleep among long timeouts) goes to
/// a min-heap, whose O(log n) sift cost a receive ~0.3 µs with a thousand entries in it. The
/// earliest entry is the earlier of the queue's first and the heap's minimum.
///
/// The core waits in the kernel until the earliest one (`io_uring_submit_and_wait_timeout` or
/// `epoll_wait`'s timeout), so no timer goes through Dispatch and a core with none armed waits
/// with no timeout at all. An entry whose operation ended early stays until its time and is then
/// dropped (its generation no longer matches), unless the core drops such entries sooner
/// (``dropEnded(keeping:)``): with long deadlines (a TCP idle timeout of minutes on every
/// receive) they would otherwise pile up by the million.
struct TimerQueue {
    enum Action {
        /// End a sleep normally.
        case wake
        /// End a wait as timed out.
        case timeout
        /// Cancel an operation that is still in flight and mark it timed out.
        case expire
    }

    struct Entry: Comparable {
        let deadline: UInt64
        let sequence: UInt64
        let operation: OperationID
        let action: Action

        static func < (lhs: Entry, rhs: Entry) -> Bool {
            (lhs.deadline, lhs.sequence) < (rhs.deadline, rhs.sequence)
        }
        static func == (lhs: Entry, rhs: Entry) -> Bool {
            lhs.deadline == rhs.deadline && lhs.sequence == rhs.sequence
        }
    }

    private var heap = Heap<Entry>()
    /// Entries scheduled in deadline order, earliest first.
    private var ordered = Deque<Entry>()
    /// Scratch for ``dropEnded(keeping:)``, kept with its capacity.
    private var kept: [Entry] = []
    private var sequence: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty && ordered.isEmpty }
    var count: Int { heap.count + ordered.count }

    /// The earliest deadline, in monotonic nanoseconds.
    var earliest: UInt64? { first?.deadline }

    private var first: Entry? {
        guard let queued = ordered.first else { return heap.min }
        guard let heaped = heap.min else { return queued }
        return heaped < queued ? heaped : queued
    }

    mutating func schedule(_ operation: OperationID, at deadline: Deadline, action: Action) {
        sequence &+= 1
        let entry = Entry(deadline: deadline.nanoseconds, sequence: sequence, operation: operation, action: action)
        if let last = ordered.last, entry < last {
            heap.insert(entry)
        } else {
            ordered.append(entry)
        }
    }

    /// Removes and returns the next entry due at or before `now`.
    mutating func popDue(now: UInt64) -> Entry? {
        guard let first, first.deadline <= now else { return nil }
        return removeFirst(first)
    }

    /// Removes `first`, the earliest entry, from whichever of the two holds it.
    private mutating func removeFirst(_ first: Entry) -> Entry {
        if let queued = ordered.first, queued == first { return ordered.removeFirst() }
        return heap.removeMin()
    }

    /// Drops every entry whose operation `isLive` says has ended: O(n log n) for the heap, O(n)
    /// for the ordered queue (filtering keeps its order), and no allocation once `kept`, the heap
    /// and the queue have grown (each is emptied in place, keeping its storage, and refilled;
    /// building a new `Heap` cost a copy and then regrowth, a dozen allocations each time).
    mutating func dropEnded(keeping isLive: (OperationID) -> Bool) {
        kept.removeAll(keepingCapacity: true)
        for entry in heap.unordered where isLive(entry.operation) { kept.append(entry) }
        while heap.popMin() != nil {}
        for entry in kept { heap.insert(entry) }
        kept.removeAll(keepingCapacity: true)
        for entry in ordered where isLive(entry.operation) { kept.append(entry) }
        ordered.removeAll(keepingCapacity: true)
        ordered.append(contentsOf: kept)
        kept.removeAll(keepingCapacity: true)
    }

    /// Drops the entries at the front whose operation has ended, up to the first live one: a
    /// core about to park then waits for a timer that still matters, or with no timeout at all.
    mutating func dropEndedAtFront(keeping isLive: (OperationID) -> Bool) {
        while let first, !isLive(first.operation) { _ = removeFirst(first) }
    }

    mutating func removeAll() {
        heap = Heap()
        ordered = Deque()
    }
}
