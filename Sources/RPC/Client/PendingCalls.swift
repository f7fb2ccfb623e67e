import NetRuntime
import NetTransport

/// A client call waiting for its response.
struct PendingCall {
    var handle: CoreWakeHandle?
    var response: Message?
    var error: RPCError?
    var done: Bool { response != nil || error != nil }
}

/// The calls in flight on a connection, by call ID: an open-addressed table indexed by the ID's
/// low bits (IDs are handed out here, skipping any whose slot is taken), so a call costs no
/// hashing and no allocation; the table doubles only when full.
struct PendingCalls {
    private struct Slot {
        var id: UInt64 = 0  // 0: free (IDs start at 1)
        var call = PendingCall()
    }

    private var slots: [Slot]
    private var nextID: UInt64 = 1
    /// Calls in flight.
    private(set) var count = 0

    init(capacity: Int = 64) {
        var size = 1
        while size < max(capacity, 2) { size <<= 1 }
        slots = Array(repeating: Slot(), count: size)
    }

    private func index(_ id: UInt64) -> Int { Int(truncatingIfNeeded: id) & (slots.count - 1) }

    /// Registers a new call and returns its ID.
    mutating func begin() -> UInt64 {
        if count == slots.count { grow() }
        while true {
            let id = nextID
            nextID &+= 1
            if nextID == 0 { nextID = 1 }
            let i = index(id)
            if slots[i].id == 0 {
                slots[i] = Slot(id: id, call: PendingCall())
                count += 1
                return id
            }
        }
    }

    /// Registers a call whose ID is not awaited (a one-way message).
    mutating func nextOneWayID() -> UInt64 {
        defer { nextID &+= 1; if nextID == 0 { nextID = 1 } }
        return nextID
    }

    // The calls below work on the slot in place: copying a `PendingCall` out retains its
    // message and error, a cost every call paid several times.

    /// Whether call `id` is in flight and has its response (or error).
    func isAnswered(_ id: UInt64) -> Bool {
        let i = index(id)
        return slots[i].id == id && id != 0 && slots[i].call.done
    }

    /// Records the handle that resumes call `id`'s caller, if the call is in flight.
    mutating func setHandle(_ id: UInt64, _ handle: CoreWakeHandle) {
        let i = index(id)
        if slots[i].id == id && id != 0 { slots[i].call.handle = handle }
    }

    /// Answers call `id` if it is in flight and unanswered (`body` sets its response or error);
    /// returns the handle of its waiting caller, if any.
    mutating func answer(_ id: UInt64, _ body: (inout PendingCall) -> Void) -> CoreWakeHandle? {
        let i = index(id)
        guard slots[i].id == id, id != 0, !slots[i].call.done else { return nil }
        body(&slots[i].call)
        return slots[i].call.handle
    }

    /// Removes the call `id`; returns it.
    @discardableResult
    mutating func remove(_ id: UInt64) -> PendingCall? {
        let i = index(id)
        guard slots[i].id == id, id != 0 else { return nil }
        var removed = Slot()
        swap(&removed, &slots[i])
        count -= 1
        return removed.call
    }

    /// The IDs in flight.
    var ids: [UInt64] { slots.compactMap { $0.id == 0 ? nil : $0.id } }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: Slot(), count: old.count * 2)
        for slot in old where slot.id != 0 { slots[index(slot.id)] = slot }
    }
}
