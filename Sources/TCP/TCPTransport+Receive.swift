#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
public import NetTransport

extension TCPTransport {
    /// Receives the next whole frame (``Transport/recv()`` is this, cancellable). With
    /// `cancellable` false, task cancellation does not end the wait (closing the connection, the
    /// idle timeout and the core's stop do), and it costs no cancellation handler.
    ///
    /// - Throws: ``TransportError`` `.closed` at end of stream between frames (or after
    ///   ``close()``), `.truncatedFrame` inside one, `.malformedFrame` / `.frameTooLarge` for a
    ///   bad length, `.timedOut` after `idleTimeout` without data, `.connectionReset`,
    ///   `.concurrentReceive` if another receive is in progress; `CancellationError` if a
    ///   cancellable receive is cancelled. Every error but `.concurrentReceive` and
    ///   `CancellationError` closes the connection: a cancelled receive loses nothing (the bytes
    ///   of a frame begun stay for the next receive).
    @inline(__always)  // into its protocol witness: a receive through `Transport` takes no extra async frame
    public func recv(cancellable: Bool) async throws -> Message {
        try checkOpen()
        guard !receiving else { throw TransportError(.concurrentReceive, "recv called while another recv is in progress") }
        receiving = true
        do {
            let frame = try await receiveFrame(cancellable: cancellable)
            receiving = false
            return frame
        } catch is CancellationError where failure == nil {
            // Nothing is lost: the chunk (or a large frame's storage) keeps what has arrived.
            receiving = false
            throw CancellationError()
        } catch {
            throw await receiveEnded(by: error)
        }
    }

    /// A receive ended by `error`: the connection ends, and the error that says why is returned.
    func receiveEnded(by error: any Error) async -> any Error {
        receiving = false
        largeFrame = nil  // the connection ends: the frame's storage (up to maximumFrameSize) goes back now
        // Ended meanwhile by another task (close): report why the connection ended, not how
        // the receive was woken (a shutdown's end of stream, or epoll's cancellation first).
        let thrown: any Error = failure ?? TransportError.from(error, during: "recv")
        await fail(thrown as? TransportError ?? TransportError(.closed, "recv cancelled"))
        await closeIfIdle()  // ended by another task meanwhile: the receiver was the last user
        return thrown
    }

    /// Returns the next frame if the chunk already holds all of it (see ``Transport/tryRecv()``).
    public func tryRecv() throws(TransportError) -> Message? {
        try checkOpen()
        guard !receiving else { throw TransportError(.concurrentReceive, "tryRecv called while a recv is in progress") }
        return bufferedFrame()
    }

    /// Cuts the next frame out of the chunk if all of it is there and its length is valid.
    private func bufferedFrame() -> Message? {
        guard let chunk, readEnd - readStart >= FrameHeader.size else { return nil }
        let length = FrameHeader.length(at: chunk.base + readStart)
        // A bad length is left for the receive path, which reports it and ends the connection.
        guard (try? FrameHeader.validate(length, maximum: configuration.maximumFrameSize)) != nil else { return nil }
        let frameEnd = readStart + FrameHeader.size + length
        guard frameEnd <= readEnd else { return nil }
        let frame = Message(storage: chunk, offset: readStart + FrameHeader.size, count: length)
        readStart = frameEnd
        return frame
    }

    private func receiveFrame(cancellable: Bool) async throws -> Message {
        while true {
            switch try nextReceiveStep() {
            case .frame(let frame):
                return frame
            case .read(let storage, let free):
                flush()
                let n = try await core.recv(fd, into: free, deadline: readDeadline, cancellable: cancellable)
                withExtendedLifetime(storage) {}
                try didReceive(n)
            }
        }
    }

    /// What a receive does next: hand over a whole frame, or read into the free end of `storage`.
    ///
    /// Before a read, what this turn has queued is written first (`flush`), before the receive is
    /// set up: in a request-response exchange the request (or the reply) then leaves without
    /// waiting for the setup of the receive that awaits its answer, which the end-of-turn write
    /// would. Frames sent later in the turn still leave together at its end.
    enum ReceiveStep {
        case frame(Message)
        case read(BufferStorage, UnsafeMutableRawBufferPointer)
    }

    /// The receive's next step, from what has arrived (see ``ReceiveStep``).
    ///
    /// - Throws: `.malformedFrame` / `.frameTooLarge` for a bad length.
    func nextReceiveStep() throws -> ReceiveStep {
        if let (storage, length, received) = largeFrame {
            if received == length {
                largeFrame = nil
                return .frame(Message(storage: storage, offset: 0, count: length))
            }
            return .read(storage, UnsafeMutableRawBufferPointer(start: storage.base + received, count: length - received))
        }
        if let frame = bufferedFrame() { return .frame(frame) }
        let chunkSize = max(configuration.receiveChunkSize, 2 * FrameHeader.size)
        if let chunk {
            let available = readEnd - readStart
            if available >= FrameHeader.size {
                let length = FrameHeader.length(at: chunk.base + readStart)
                try FrameHeader.validate(length, maximum: configuration.maximumFrameSize)
                if FrameHeader.size + length > chunkSize {
                    beginLarge(length: length)
                    return try nextReceiveStep()
                }
                if readStart + FrameHeader.size + length > chunk.capacity { moveToFreshChunk(size: chunkSize) }
            } else if readStart + FrameHeader.size > chunk.capacity {
                moveToFreshChunk(size: chunkSize)
            } else if available == 0 && readStart > 0 && isKnownUniquelyReferenced(&self.chunk) {
                // Every frame cut from the chunk is gone: read into it from the start again.
                readStart = 0
                readEnd = 0
            }
        } else {
            chunk = pool.allocator.storage(capacity: chunkSize)
            readStart = 0
            readEnd = 0
        }
        let chunk = self.chunk! // '!': made above if there was none
        return .read(chunk, UnsafeMutableRawBufferPointer(start: chunk.base + readEnd, count: chunk.capacity - readEnd))
    }

    /// Records a read of the step ``nextReceiveStep()`` asked for: `n` bytes, 0 at end of stream.
    /// What has arrived is recorded after every read, so a cancelled receive loses nothing.
    ///
    /// - Throws: why the connection ended, if it ended meanwhile; `.closed` at end of stream
    ///   between frames, `.truncatedFrame` inside one.
    func didReceive(_ n: Int) throws {
        try checkOpen()
        if let (storage, length, received) = largeFrame {
            if n == 0 {
                throw TransportError(.truncatedFrame, "the stream ended inside a frame (\(received) of \(length) bytes)")
            }
            largeFrame = (storage, length, received + n)
            return
        }
        if n == 0 {
            if readEnd > readStart {
                throw TransportError(.truncatedFrame, "the stream ended inside a frame (\(readEnd - readStart) bytes of it received)")
            }
            throw TransportError(.closed, "the peer closed the connection")
        }
        readEnd += n
    }

    /// When a read with nothing arriving ends the connection (``TCPConfiguration/idleTimeout``).
    var readDeadline: Deadline? { configuration.idleTimeout.map { Deadline.coarseNow + $0 } }

    /// Continues in a fresh chunk, carrying over the bytes of the frame begun at the end of the
    /// old one (the old chunk lives on while frames cut from it do).
    private func moveToFreshChunk(size: Int) {
        let old = chunk! // '!': called only with a chunk
        let fresh = pool.allocator.storage(capacity: size)
        let partial = readEnd - readStart
        fresh.base.copyMemory(from: old.base + readStart, byteCount: partial)
        chunk = fresh
        readStart = 0
        readEnd = partial
    }

    /// Starts a frame larger than a chunk in storage of its own size, with the bytes of it
    /// that are already in the chunk. The chunk's bytes are all consumed then, but frames cut
    /// from it before may still be held: reading resumes after them, and the chunk is read from
    /// its start again only once nothing holds it (``nextReceiveStep()``).
    private func beginLarge(length: Int) {
        let chunk = self.chunk! // '!': receiveFrame checked it
        let storage = pool.allocator.storage(capacity: length)
        let already = readEnd - readStart - FrameHeader.size
        storage.base.copyMemory(from: chunk.base + readStart + FrameHeader.size, byteCount: already)
        readStart = readEnd
        largeFrame = (storage, length, already)
    }
}
