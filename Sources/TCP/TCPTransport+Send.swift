#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
public import NetTransport

extension TCPTransport {
    /// Sends `message` as one frame. See ``TCPTransport`` for the queueing and coalescing rules.
    ///
    /// - Throws: ``TransportError`` `.malformedFrame` for an empty message, `.frameTooLarge` above
    ///   `maximumFrameSize`, or why the connection ended; `CancellationError` if cancelled while
    ///   waiting for room.
    public func send(_ message: Message) async throws {
        try checkOpen()
        try FrameHeader.validate(message.count, maximum: configuration.maximumFrameSize)
        // Bound the queue; a frame bigger than the bound goes alone into an empty queue.
        while queuedBytes > 0 && queuedBytes + message.count > configuration.maximumQueuedBytes {
            try await roomForSenders.wait()
            try checkOpen()
        }
        queue.append(message)
        queuedBytes += message.count
        if writing { return }
        writing = true
        do {
            try await writeQueued()
        } catch {
            writing = false
            await closeIfIdle()
            throw error
        }
        writing = false
        await closeIfIdle()
    }

    /// Writes until the queue is empty, many frames per vectored send.
    private func writeQueued() async throws {
        let maximumFrames = max(configuration.maximumFramesPerWrite, 1)
        while !queue.isEmpty {
            var frames = 0
            var bytes = 0
            for message in queue.prefix(maximumFrames) {
                headers[frames] = UInt32(truncatingIfNeeded: message.count).bigEndian
                vectors[2 * frames] = iovec(iov_base: UnsafeMutableRawPointer(headers + frames), iov_len: FrameHeader.size)
                vectors[2 * frames + 1] = iovec(
                    iov_base: UnsafeMutableRawPointer(mutating: message.baseAddress), iov_len: message.count)
                frames += 1
                bytes += message.count
            }
            do {
                // The queue keeps the messages (and so their memory) alive during the write; `fail`
                // leaves the queue to the writer, which empties it once the kernel is done with it.
                try await core.sendAll(fd, vectors: UnsafeMutableBufferPointer(start: vectors, count: 2 * frames))
            } catch {
                // Closed meanwhile: report why it was closed, not the cancelled write.
                if let failure = self.failure {
                    dropQueue()
                    throw failure
                }
                let failure = TransportError.from(error, during: "send")
                await fail(failure as? TransportError ?? TransportError(.closed, "send cancelled"))
                dropQueue()
                throw failure
            }
            // Closed while the write was in flight: the frames went out, but the queue is void.
            if let failure {
                dropQueue()
                throw failure
            }
            writeCount += 1
            framesSent += frames
            queue.removeFirst(frames)
            queuedBytes -= bytes
            roomForSenders.signalAll()
        }
    }

    /// Forgets every queued frame (the connection has ended).
    func dropQueue() {
        queue.removeAll()
        queuedBytes = 0
        roomForSenders.signalAll()
    }
}
