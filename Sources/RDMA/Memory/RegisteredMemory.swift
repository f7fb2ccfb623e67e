#if canImport(Glibc)
import Glibc
#endif
import CRDMA
import NetTransport

/// Bytes the device may read or write for a work request, with the keys of their registration.
struct RegisteredBytes {
    /// The bytes (a copy when the original could not be registered); held until the work
    /// request completes, since the device reads or writes them until then.
    let message: Message
    let localKey: UInt32
    let remoteKey: UInt32
    /// The registration-cache entry pinned for the work request, to unpin when it completes.
    let pinned: BufferStorage?
}

extension RDMADeviceContext {
    /// `message` in registered memory, without a copy when it lies in the core's slab or its
    /// storage can be registered through the registration cache (paid once per buffer); a copy in
    /// the slab otherwise. A cache entry used is pinned: ``release(_:)`` it when the work request
    /// completes.
    ///
    /// - Throws: ``TransportError/Code/resourceExhausted`` when nothing registered can hold it
    ///   (the message names RLIMIT_MEMLOCK when pinning memory was refused).
    func registered(_ message: Message) throws(TransportError) -> RegisteredBytes {
        guard let base = message.baseAddress else {
            throw TransportError(.malformedFrame, "an empty message")
        }
        if let region = slab.region(holding: base, count: message.count) {
            return RegisteredBytes(message: message, localKey: region.localKey, remoteKey: region.remoteKey, pinned: nil)
        }
        var cacheError: (any Error)?
        if let storage = message.backingStorage {
            do {
                let keys = try registrations.keys(for: storage)
                registrations.pin(storage)
                return RegisteredBytes(message: message, localKey: keys.localKey, remoteKey: keys.remoteKey, pinned: storage)
            } catch {
                cacheError = error
            }
        }
        // Registration refused (a buffer larger than the cache, or the memlock limit): a copy.
        let (storage, localKey, remoteKey): (BufferStorage, UInt32, UInt32)
        do {
            (storage, localKey, remoteKey) = try allocateRegistered(message.count)
        } catch {
            throw (cacheError as? TransportError) ?? error
        }
        message.withUnsafeBytes { bytes in
            storage.base.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) // '!': count > 0
        }
        return RegisteredBytes(message: Message(storage: storage, offset: 0, count: message.count),
                               localKey: localKey, remoteKey: remoteKey, pinned: nil)
    }

    /// Ends what ``registered(_:)`` started, once the work request has completed.
    func release(_ bytes: RegisteredBytes) {
        if let storage = bytes.pinned { registrations.unpin(storage) }
    }

    /// Fresh registered memory of at least `size` bytes: a slab chunk, or, above the largest size
    /// class or when the slab is full, memory registered for this buffer alone (deregistered when
    /// the last message over it goes).
    ///
    /// - Throws: ``TransportError/Code/resourceExhausted`` when memory cannot be registered (the
    ///   message names RLIMIT_MEMLOCK when pinning was refused).
    func allocateRegistered(_ size: Int) throws(TransportError) -> (BufferStorage, localKey: UInt32, remoteKey: UInt32) {
        let slab = self.slab
        let chunk: SlabAllocator.Chunk?
        do {
            chunk = try slab.allocate(size)
        } catch let error as TransportError {
            throw error
        } catch {
            throw TransportError(.resourceExhausted, "registering slab memory failed: \(error)")
        }
        if let chunk {
            // '!': a chunk lies in a region of its slab.
            let region = slab.region(holding: chunk.base, count: chunk.size)!
            return (chunkLender.storage(over: chunk), region.localKey, region.remoteKey)
        }
        let base = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 4096)
        let mr: UnsafeMutablePointer<ibv_mr>
        do {
            mr = try registrar.register(base, size: max(size, 1))
        } catch {
            base.deallocate()
            throw error
        }
        let storage = BufferStorage(wrapping: base, capacity: size) {
            ibv_dereg_mr(mr)
            base.deallocate()
        }
        return (storage, mr.pointee.lkey, mr.pointee.rkey)
    }
}
