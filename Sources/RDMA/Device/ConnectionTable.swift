import NetTransport

/// The connections of a core's RDMA context by number, the number a completion's `wr_id` names:
/// a lookup per completion is an index and a compare, with no hashing and no weak reference
/// (a weakly referenced object pays a side-table lookup on every retain and release).
///
/// A number is a slot index (low 16 bits) and that slot's generation (high 16 bits, never 0),
/// so a completion flushed after its connection is gone never reaches a later connection in the
/// same slot. Entries are `unowned(unsafe)`: a transport removes itself before it is freed (its
/// teardown, which its deinit runs, unregisters it).
struct ConnectionTable {
    private struct Entry {
        var number: UInt32
        unowned(unsafe) var transport: RDMATransport?
    }

    /// At most this many connections at once per core.
    static let capacity = 1 << 16

    private var entries: [Entry] = []
    private var freeSlots: [Int] = []

    /// Adds `transport` under a new number; `nil` when the table is full.
    mutating func insert(_ transport: RDMATransport) -> UInt32? {
        let slot: Int
        if let reused = freeSlots.popLast() {
            slot = reused
        } else {
            guard entries.count < Self.capacity else { return nil }
            slot = entries.count
            entries.append(Entry(number: 0, transport: nil))
        }
        var generation = (entries[slot].number >> 16) &+ 1
        if generation > 0xFFFF { generation = 1 }
        let number = generation << 16 | UInt32(slot)
        entries[slot] = Entry(number: number, transport: transport)
        return number
    }

    /// Removes connection `number`, if it is there.
    mutating func remove(_ number: UInt32) {
        let slot = Int(number & 0xFFFF)
        guard slot < entries.count, entries[slot].number == number, entries[slot].transport != nil else { return }
        entries[slot].transport = nil
        freeSlots.append(slot)
    }

    /// Connection `number`, if it is still there.
    @inline(__always)
    subscript(number: UInt32) -> RDMATransport? {
        let slot = Int(number & 0xFFFF)
        guard slot < entries.count, entries[slot].number == number else { return nil }
        return entries[slot].transport
    }

    /// The connections now, in a copy (failing one removes it from the table).
    var all: [RDMATransport] {
        entries.compactMap(\.transport)
    }
}
