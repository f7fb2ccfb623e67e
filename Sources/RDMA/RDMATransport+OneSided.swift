import CRDMA
import NetRuntime
public import NetTransport

/// One operation of a one-sided batch (``RDMATransport/perform(_:)``).
public enum OneSidedOperation {
    /// RDMA READ of the whole remote buffer into fresh registered memory of this core.
    case read(from: RemoteBuffer)
    /// RDMA WRITE of the message to the start of the remote buffer (at most its length).
    case write(Message, to: RemoteBuffer)
}

/// A posted batch of one-sided operations, finished by its last (signaled) work request.
final class OneSidedBatch {
    private(set) var isFinished = false
    private(set) var error: TransportError?

    /// Marks the batch done, or failed with `error`; only the first call counts.
    func finish(_ error: TransportError?) {
        guard !isFinished else { return }
        isFinished = true
        self.error = error
    }
}

/// One-sided RDMA: READ and WRITE against a peer's registered memory, which its CPU never sees.
/// The peer hands out ``RemoteBuffer`` descriptors (``remoteAccess(to:)``), typically in a message.
extension RDMATransport {
    /// Lets the peer READ and WRITE `message`'s bytes: the descriptor to give it.
    ///
    /// Memory from ``allocateBuffer(capacity:)`` is exposed in place and stays registered as long
    /// as the core's slab. Other memory is registered through the registration cache, which keeps
    /// the buffer alive while it is registered; when it is evicted (least recently used, past the
    /// cache's limits), the peer's operations on it fail with an access error that ends the
    /// connection, and never reach other memory.
    ///
    /// - Throws: ``TransportError`` `.resourceExhausted` when the memory cannot be registered (the
    ///   message names RLIMIT_MEMLOCK when pinning was refused), `.invalidArgument` for an
    ///   empty message.
    public func remoteAccess(to message: Message) throws(TransportError) -> RemoteBuffer {
        try checkOpen()
        guard let base = message.baseAddress, message.count > 0 else {
            throw TransportError(.invalidArgument, "remote access to an empty message")
        }
        let address = UInt64(UInt(bitPattern: base))
        if let region = device.slab.region(holding: base, count: message.count) {
            return RemoteBuffer(address: address, length: message.count, remoteKey: region.remoteKey)
        }
        guard let storage = message.backingStorage else {
            throw TransportError(.invalidArgument, "remote access to a message without storage")
        }
        let keys = try registrationKeys(for: storage)
        return RemoteBuffer(address: address, length: message.count, remoteKey: keys.remoteKey)
    }

    private func registrationKeys(for storage: BufferStorage) throws(TransportError) -> RegistrationCache.Keys {
        do {
            return try device.registrations.keys(for: storage)
        } catch let error as TransportError {
            throw error
        } catch {
            throw TransportError(.resourceExhausted, "registering memory failed: \(error)")
        }
    }

    /// Reads the whole of `remote` (RDMA READ) into registered memory of this core.
    public func read(_ remote: RemoteBuffer) async throws -> Message {
        // '!': a batch of one read returns one message.
        try await perform([.read(from: remote)])[0]!
    }

    /// Writes `message` (RDMA WRITE) to the start of `remote`; returns once it is in the peer's
    /// memory (the peer is not told: say so in a message, which arrives after the write).
    public func write(_ message: Message, to remote: RemoteBuffer) async throws {
        _ = try await perform([.write(message, to: remote)])
    }

    /// Posts `operations` as linked work requests (one doorbell per 32, one completion for the
    /// batch) and returns when all are done: for each operation in order, the message read, or
    /// `nil` for a write. Writes are posted from the message's memory in place when it is
    /// registered (the slab, or the registration cache), else from a copy.
    ///
    /// - Throws: ``TransportError`` `.invalidArgument` for an empty batch, one larger than the
    ///   send queue, an empty operation, a write larger than its remote buffer or a read above
    ///   `maximumMessageSize`; `.unavailable` for a read when READ was not negotiated
    ///   (`readDepth` 0); `.resourceExhausted` when registered memory cannot be had; why the
    ///   connection ended (a remote access error ends it); `CancellationError` if cancelled
    ///   before the batch was posted, or while waiting for it (it then still completes, and
    ///   its results are dropped).
    public func perform(_ operations: [OneSidedOperation]) async throws -> [Message?] {
        try checkOpen()
        try validate(operations)
        // Registered memory first, so a failure changes nothing.
        var local: [RegisteredBytes] = []
        local.reserveCapacity(operations.count)
        do {
            for operation in operations {
                switch operation {
                case .read(let remote):
                    let (storage, localKey, remoteKey) = try device.allocateRegistered(remote.length)
                    local.append(RegisteredBytes(message: Message(storage: storage, offset: 0, count: remote.length),
                                                 localKey: localKey, remoteKey: remoteKey, pinned: nil))
                case .write(let message, _):
                    local.append(try device.registered(message))
                }
            }
        } catch {
            for bytes in local { device.release(bytes) }
            throw error
        }
        // Room in the send queue for the whole batch, after any batch already waiting.
        do {
            while isOpen, signals.inFlight + operations.count > signals.queueDepth {
                retireUnsignaledSends()
                try await oneSidedWaiters.wait()
            }
            try checkOpen()
        } catch {
            for bytes in local { device.release(bytes) }
            throw error
        }
        let batch = OneSidedBatch()
        var requests: [crdma_rdma_op] = []
        requests.reserveCapacity(operations.count)
        for (index, operation) in operations.enumerated() {
            let last = index == operations.count - 1
            let (sequence, signaled) = signals.post(forceSignal: last)
            if signaled { statistics.signaledSends += 1 }
            let bytes = local[index]
            inFlight[slot(of: sequence)] = last ? .batch(batch, bytes) : .memory(bytes)
            let remote: RemoteBuffer
            let isWrite: UInt32
            switch operation {
            case .read(let from): (remote, isWrite) = (from, 0)
            case .write(_, let to): (remote, isWrite) = (to, 1)
            }
            requests.append(crdma_rdma_op(
                wr_id: WorkRequestID.send(connection: number, sequence: sequence).raw,
                local_address: UInt64(UInt(bitPattern: bytes.message.baseAddress)), remote_address: remote.address,
                length: UInt32(bytes.message.count), local_key: bytes.localKey, remote_key: remote.remoteKey,
                is_write: isWrite, flags: signaled ? CRDMA_SEND_SIGNALED : 0))
        }
        let chain = Int(CRDMA_MAX_CHAIN)
        let status: Int32 = requests.withUnsafeBufferPointer { all in
            var start = 0
            while start < all.count {
                let count = min(chain, all.count - start)
                let status = crdma_post_rdma(queuePair, all.baseAddress! + start, Int32(count)) // '!': not empty
                if status != 0 { return status }
                start += count
            }
            return 0
        }
        guard status == 0 else {
            // What was posted is flushed by the failure; teardown releases the memory and fails
            // the batch.
            fail(verbsError(.connectionReset, "ibv_post_send (RDMA READ/WRITE)", errno: status))
            throw failure! // '!': just set
        }
        statistics.oneSidedOperations += operations.count
        statistics.oneSidedBatches += 1
        while !batch.isFinished {
            try await oneSidedWaiters.wait()
        }
        if let error = batch.error { throw error }
        return zip(operations, local).map { operation, bytes in
            if case .read = operation { bytes.message } else { nil }
        }
    }

    private func validate(_ operations: [OneSidedOperation]) throws(TransportError) {
        guard !operations.isEmpty else { throw TransportError(.invalidArgument, "an empty one-sided batch") }
        guard operations.count <= signals.queueDepth else {
            throw TransportError(.invalidArgument,
                                 "a batch of \(operations.count) operations, above the send queue's \(signals.queueDepth)")
        }
        for operation in operations {
            switch operation {
            case .read(let remote):
                guard readDepth > 0 else {
                    throw TransportError(.unavailable, "RDMA READ is not allowed on this connection (readDepth 0)")
                }
                guard remote.length > 0, remote.length <= configuration.maximumMessageSize else {
                    throw TransportError(.invalidArgument,
                                         "a read of \(remote.length) bytes (1 to \(configuration.maximumMessageSize) allowed)")
                }
            case .write(let message, let remote):
                guard message.count > 0, message.count <= remote.length else {
                    throw TransportError(.invalidArgument,
                                         "a write of \(message.count) bytes to a remote buffer of \(remote.length)")
                }
            }
        }
    }
}
