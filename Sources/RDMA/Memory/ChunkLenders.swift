import NetTransport

/// Lends slab chunks to buffers (``RDMABufferPool``'s, and registered memory for reads) and
/// frees each back to the slab when its last buffer goes: one object per slab, so a buffer
/// costs no release closure (a closure and its context were two allocations per buffer).
final class SlabChunkLender: BufferStorageOwner {
    let slab: SlabAllocator

    init(slab: SlabAllocator) {
        self.slab = slab
    }

    /// Storage over `chunk`, freed back to the slab when no buffer refers to it.
    func storage(over chunk: SlabAllocator.Chunk) -> BufferStorage {
        BufferStorage(wrapping: chunk.base, capacity: chunk.size, owner: self, tag: chunk.tag)
    }

    func storageReleased(_ base: UnsafeMutableRawPointer, tag: Int) {
        slab.free(tag: tag)
    }
}

/// Lends a connection's receive buffers to the messages received into them (zero-copy receive)
/// and takes each back when its message goes: reposted while the connection lives, freed to the
/// slab once it is gone. One per connection: a received message costs its storage object and
/// nothing else.
final class ReceiveBufferLender: BufferStorageOwner {
    /// Not retained, and cleared by the transport's deinit: messages may outlive their
    /// connection. (A weak reference would cost the transport a side table, and every retain
    /// and release of it a lookup there; an `unowned(unsafe)` one is retained and released
    /// around each use.)
    var transport: Unmanaged<RDMATransport>?
    let slab: SlabAllocator
    let chunks: [SlabAllocator.Chunk]

    init(slab: SlabAllocator, chunks: [SlabAllocator.Chunk]) {
        self.slab = slab
        self.chunks = chunks
    }

    /// Storage over the first `count` bytes of receive buffer `slot`.
    func storage(slot: Int, count: Int) -> BufferStorage {
        BufferStorage(wrapping: chunks[slot].base, capacity: count, owner: self, tag: slot)
    }

    func storageReleased(_ base: UnsafeMutableRawPointer, tag slot: Int) {
        giveBack(slot: slot)
    }

    /// The last message over `slot`'s buffer is gone (a rendezvous message's too, whose request
    /// holds the slot while it is read).
    func giveBack(slot: Int) {
        if let transport {
            transport._withUnsafeGuaranteedRef { $0.released(slot: slot) }
        } else {
            slab.free(chunks[slot])
        }
    }
}
