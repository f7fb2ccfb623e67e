#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
public import NetTransport

extension TCPTransport {
    /// Sends `message` as one frame. See ``TCPTransport`` for the queueing and coalescing rules.
    ///
    /// Returns once the frame is queued. The core writes it at the end of its turn, together with
    /// every frame sent during the turn, in one non-blocking vectored send (a task that receives
    /// and sends in a loop thus has its replies leave in one send per read); what the socket
    /// cannot take at once is written by the connection's writer task as room appears.
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

    /// Queues `head` then `body` as one frame, as ``send(_:_:)`` does, unless the queue is over
    /// `maximumQueuedBytes`: then returns false and queues nothing.
    public func trySend(_ head: Message, _ body: Message) throws(TransportError) -> Bool {
        try enqueueIfRoom(OutgoingFrame(head: head, body: body))
    }

    /// Writes what is queued now, as the end of the turn would: one non-blocking vectored send,
    /// the rest (if any) left to the writer. Frames sent later in the turn leave at its end.
    public func flush() {
        if flushScheduled { flushQueued() }
    }

    private func enqueue(_ frame: OutgoingFrame) async throws {
        while try !enqueueIfRoom(frame) {
            try await roomForSenders.wait()
        }
    }

    private func enqueueIfRoom(_ frame: OutgoingFrame) throws(TransportError) -> Bool {
        try checkOpen()
        let count = frame.count
        try FrameHeader.validate(count, maximum: configuration.maximumFrameSize)
        // Bound the queue; a frame bigger than the bound goes alone into an empty queue.
        if queuedBytes > 0 && queuedBytes + count > configuration.maximumQueuedBytes { return false }
        // A write in flight takes the frame when it returns; otherwise the core writes it at
        // the end of this turn, with whatever else is sent before then.
        if !writing && !flushScheduled {
            do {
                try core.runAtEndOfTurn(turnEnd)
            } catch where error.isShutDown {
                throw TransportError(.shutDown, "a send after the connection's core stopped")
            } catch {
                throw TransportError(.invalidArgument, "a send off the connection's core: \(error)")
            }
            flushScheduled = true
            turnEnd.transport = self
        }
        queue.append(frame)
        queuedBytes += count
        return true
    }

    /// Writes the queue with one non-blocking `sendmsg`, at the end of the core's turn or before
    /// a receive waits (`fill`): no task, no job, no ring round trip. What the socket does not
    /// take at once (a full send buffer, a batch longer than `maximumFramesPerWrite`, an error to
    /// report) is left to the writer task.
    func flushQueued() {
        flushScheduled = false
        guard failure == nil, !writing, !queue.isEmpty else { return }
        let (used, _) = fillVectors()
        var rest = UnsafeMutableBufferPointer(start: vectors, count: used)
        IOVectors.advance(&rest, by: firstFrameSent)
        // An error goes to the writer too: its ring send meets it again and ends the connection.
        let sent = (try? core.sendNow(fd, vectors: rest)) ?? 0
        if sent > 0 {
            writeCount += 1
            consume(sent)
            roomForSenders.signalAll()
        }
        // Whatever is left (a short write, a longer queue) is the writer's.
        if !queue.isEmpty { startWriter() }
    }

    /// Wakes the writer task, starting it on first use.
    private func startWriter() {
        if !writerStarted {
            writerStarted = true
            launchWriter()
        } else {
            wakeWriter()
        }
    }

    /// Starts the connection's writer: a task on the core that writes, through the ring, what
    /// the end-of-turn write could not. Called on the core's thread (from the turn's end).
    private func launchWriter() {
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
                // A bare continuation, resumed by the next flush that leaves work or by the end of
                // the connection: the cheapest way to park a task on its core.
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

    /// Points the vectors at the first `maximumFramesPerWrite` queued frames (header, head,
    /// body) and returns how many vectors that is and their bytes on the wire. (The runtime's
    /// sends take at most `IOVectors.maximumCount` vectors at a time; the rest is a short write.)
    private func fillVectors() -> (vectors: Int, wireBytes: Int) {
        let maximumFrames = max(configuration.maximumFramesPerWrite, 1)
        var frames = 0
        var wireBytes = 0
        var used = 0
        for frame in queue.prefix(maximumFrames) {
            headers[frames] = UInt32(truncatingIfNeeded: frame.count).bigEndian
            vectors[used] = iovec(iov_base: UnsafeMutableRawPointer(headers + frames), iov_len: FrameHeader.size)
            frames += 1
            vectors[used + 1] = iovec(
                iov_base: UnsafeMutableRawPointer(mutating: frame.head.baseAddress), iov_len: frame.head.count)
            used += 2
            if !frame.body.isEmpty {
                vectors[used] = iovec(
                    iov_base: UnsafeMutableRawPointer(mutating: frame.body.baseAddress), iov_len: frame.body.count)
                used += 1
            }
            wireBytes += FrameHeader.size + frame.count
        }
        return (used, wireBytes)
    }

    /// Forgets the frames `sent` more bytes have completed; a frame sent in part stays first,
    /// with `firstFrameSent` saying how much of it is out.
    private func consume(_ sent: Int) {
        var left = firstFrameSent + sent
        while let first = queue.first, left >= FrameHeader.size + first.count {
            left -= FrameHeader.size + first.count
            queuedBytes -= first.count
            framesSent += 1
            queue.removeFirst()
        }
        firstFrameSent = left
    }

    /// Writes until the queue is empty, many frames per vectored send.
    private func writeQueued() async throws {
        while !queue.isEmpty {
            let (used, wireBytes) = fillVectors()
            var rest = UnsafeMutableBufferPointer(start: vectors, count: used)
            IOVectors.advance(&rest, by: firstFrameSent)
            let sending = wireBytes - firstFrameSent
            do {
                // The queue keeps the messages (and so their memory) alive during the write; `fail`
                // leaves the queue to the writer, which empties it once the kernel is done with it.
                try await core.sendAll(fd, vectors: rest)
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
            consume(sending)
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
        firstFrameSent = 0
        roomForSenders.signalAll()
    }
}
