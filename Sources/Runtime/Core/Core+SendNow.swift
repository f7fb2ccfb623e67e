public import Glibc
import CURing

extension Core {
    /// Sends what the socket takes at once, without waiting and without the ring: one
    /// non-blocking `sendmsg`. Returns the bytes the kernel took, 0 when its send buffer is
    /// full. For a caller that writes at the end of the core's turn and hands any rest to
    /// ``sendAll(_:vectors:flags:)`` (how `TCPTransport` writes). Call on the core that owns `fd`,
    /// with no ring send in flight on it (the bytes would interleave).
    ///
    /// Past ``IOVectors/maximumCount`` vectors only the first ones go (a short write).
    ///
    /// - Throws: ``IOError`` for any error but `EAGAIN` (`EPIPE`, `ECONNRESET`, ...).
    public nonisolated func sendNow(_ fd: Int32, vectors: UnsafeMutableBufferPointer<Glibc.iovec>) throws(IOError) -> Int {
        var message = msghdr()
        message.msg_iov = vectors.baseAddress
        message.msg_iovlen = min(vectors.count, IOVectors.maximumCount)  // past it: a short write
        return try sentOrFull(Glibc.sendmsg(fd, &message, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)), .sendmsg)
    }

    /// ``sendNow(_:vectors:)`` for one buffer.
    public nonisolated func sendNow(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(IOError) -> Int {
        try sentOrFull(Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)), .send)
    }

    /// A non-blocking send's result: the bytes taken, 0 for a full socket, or the error.
    private nonisolated func sentOrFull(_ sent: Int, _ operation: IOError.Operation) throws(IOError) -> Int {
        if sent >= 0 { return sent }
        let code = errno
        if code == EAGAIN || code == EWOULDBLOCK || code == EINTR { return 0 }
        throw IOError(code: code, operation: operation)
    }
}
