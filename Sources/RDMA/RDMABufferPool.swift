public import NetTransport

/// Registered memory of one core on one device, as a buffer pool: a message built in a buffer
/// from it is sent without a copy. Buffers come from the core's slab (``SlabAllocator``); a
/// request above the largest size class, or when the slab is full, gets plain memory, which a
/// send then copies (or sends inline).
public final class RDMABufferPool: BufferPool {
    let device: RDMADeviceContext

    init(device: RDMADeviceContext) {
        self.device = device
    }

    /// The slab under the pool (for tests and metrics).
    public var slab: SlabAllocator { device.slab }

    /// A buffer of at least `capacity` bytes: a slab chunk when one fits and is free, else plain
    /// memory (sent by copy or inline).
    public func allocate(capacity: Int) -> WritableBuffer {
        if let chunk = try? device.slab.allocate(capacity) {
            return WritableBuffer(storage: device.chunkLender.storage(over: chunk))
        }
        return WritableBuffer(storage: BufferStorage(allocating: capacity))
    }

    /// Whether every byte of `message` lies in this pool's registered memory.
    public func isRegistered(_ message: Message) -> Bool {
        guard let base = message.baseAddress else { return false }
        return device.slab.localKey(for: base, count: message.count) != nil
    }
}
