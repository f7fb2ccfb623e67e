#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
public import NetTransport

extension TCPTransport {
    /// Sends `message` as one frame. See ``TCPTransport`` for the queueing and coalescing rules.
    ///
    /// Returns once the frame is queued: the connection's writer task writes it, together with
    /// every frame queued before it runs (a task that receives and sends in a loop thus has its
    /// replies leave in one vectored send per read).
    ///
    /// - Throws: ``TransportError`` `.malformedFrame` for an empty message, `.frameTooLarge` above
    ///   `maximumFrameSize`, or why the connection ended; `CancellationError` if cancelled while
    ///   waiting for room.
    public func send(_ message: Message) async throws {
        try await enqueue(OutgoingFrame(head: message, body: Message()))
    }

    /// Sends `head` then `body` as one frame, gathered by the vectored write: neither is copied.
    public func send(_ head: Message, _ body: Message) async throws {
        try await enqueue(OutgoingFrame(head: head, body: body))
    }

    private func enqueue(_ frame: OutgoingFrame) async throws {
        try checkOpen()
        let count = frame.count
        try FrameHeader.validate(count, maximum: configuration.maximumFrameSize)
        // Bound the queue; a frame bigger than the bound goes alone into an empty queue.
        while queuedBytes > 0 && queuedBytes + count > configuration.maximumQueuedBytes {
            try await roomForSenders.wait()
            try checkOpen()
        }
        queue.append(frame)
        queuedBytes += count
        if !writerStarted {
            guard core.isCurrent else { throw RuntimeError.notOnCore("TCPTransport.send off its core's thread") }
            writerStarted = true
            launchWriter()
        } else if !writing {
            wakeWriter()
        }
    }

    /// Starts the connection's writer: a task on the core that writes whatever is queued
    /// whenever it runs, so frames queued by several tasks, or by one task between two of its
    /// suspensions, leave together. Called on the core's thread (`send` checks).
    private func launchWriter() {
        // Unsafe boundary: the connection is confined to its core. The writer task is
        // nonisolated but runs only on the core's executor (its preference, and every
        // operation it awaits resumes there), so the connection stays on the core's thread.
        // Nonisolated rather than isolated to the core actor: each await then costs one job
        // instead of several (docs/RUNTIME.md).
        nonisolated(unsafe) let transport = self  // Unsafe boundary: the writer task runs only on this core's executor.
        Task(executorPreference: core.executor) { @concurrent in
            await transport.runWriter()
        }
    }

    /// Resumes the writer if it is parked.
    func wakeWriter() {
        if let writer = writerParked {
            writerParked = nil
            writer.resume()
        }
    }

    /// The writer's loop: write while frames are queued, wait while none is, end with the
    /// connection (and close the descriptor if the receiver is done with it).
    private func runWriter() async {
        while failure == nil {
            if queue.isEmpty {
                // A bare continuation, resumed by the next send or by the end of the connection:
                // the cheapest way to park a task on its core.
                // The condition is checked again inside: the call may have suspended on its way.
                await withUnsafeContinuation { writer in
                    if queue.isEmpty && failure == nil { writerParked = writer } else { writer.resume() }
                }
                continue
            }
            writing = true
            do {
                try await writeQueued()
            } catch {}  // writeQueued ended the connection; later sends throw why
            writing = false
            roomForSenders.signalAll()  // a closing connection waits for the queue to drain
        }
        dropQueue()
        await closeIfIdle()
    }

    /// Writes until the queue is empty, many frames per vectored send.
    private func writeQueued() async throws {
        let maximumFrames = max(configuration.maximumFramesPerWrite, 1)
        while !queue.isEmpty {
            var frames = 0
            var bytes = 0
            var used = 0
            for frame in queue.prefix(maximumFrames) {
                headers[frames] = UInt32(truncatingIfNeeded: frame.count).bigEndian
                vectors[used] = iovec(iov_base: UnsafeMutableRawPointer(headers + frames), iov_len: FrameHeader.size)
                vectors[used + 1] = iovec(
                    iov_base: UnsafeMutableRawPointer(mutating: frame.head.baseAddress), iov_len: frame.head.count)
                used += 2
                if !frame.body.isEmpty {
                    vectors[used] = iovec(
                        iov_base: UnsafeMutableRawPointer(mutating: frame.body.baseAddress), iov_len: frame.body.count)
                    used += 1
                }
                frames += 1
                bytes += frame.count
            }
            do {
                // The queue keeps the messages (and so their memory) alive during the write; `fail`
                // leaves the queue to the writer, which empties it once the kernel is done with it.
                try await core.sendAll(fd, vectors: UnsafeMutableBufferPointer(start: vectors, count: used))
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

    /// A queued frame: its head and an optional body, written back to back.
    struct OutgoingFrame {
        var head: Message
        var body: Message
        var count: Int { head.count + body.count }
    }

    /// Forgets every queued frame (the connection has ended).
    func dropQueue() {
        queue.removeAll()
        queuedBytes = 0
        roomForSenders.signalAll()
    }
}
