#if canImport(Glibc)
import Glibc
#endif

/// One asynchronous operation a core hands to its backend. Every pointer stays valid until the
/// operation's completion arrives: the awaiting task's frame owns what they point to, and an
/// operation's continuation is resumed only by its own completion, never earlier.
enum IOOperation {
    case accept(fd: Int32, address: UnsafeMutablePointer<sockaddr>?, length: UnsafeMutablePointer<socklen_t>?)
    case connect(fd: Int32, address: UnsafePointer<sockaddr>, length: socklen_t)
    /// `pollFirst`: wait for readability before trying (saves a failed attempt when no data is
    /// expected yet, as in a ping-pong).
    case recv(fd: Int32, buffer: UnsafeMutableRawBufferPointer, flags: Int32, pollFirst: Bool)
    case send(fd: Int32, buffer: UnsafeRawBufferPointer, flags: Int32)
    case sendmsg(fd: Int32, message: UnsafePointer<msghdr>, flags: Int32)
    /// Waits for poll events (`POLLIN`, `POLLOUT`, ...) on any descriptor.
    case poll(fd: Int32, events: UInt32)
    /// Waits for poll events and stays armed: completes each time the descriptor becomes ready,
    /// flagged `IORING_CQE_F_MORE` while it stays armed, where the backend can (io_uring's
    /// multishot poll). A completion without the flag has ended it; the loop arms it again.
    case pollRepeating(fd: Int32, events: UInt32)
    case shutdown(fd: Int32, how: Int32)
    case close(fd: Int32)
    case nop

    /// Whether it closes a descriptor (a stopping core still starts these).
    var isClose: Bool {
        if case .close = self { return true }
        return false
    }

    /// The descriptor the operation works on, if any.
    var fd: Int32? {
        switch self {
        case .accept(let fd, _, _), .connect(let fd, _, _), .recv(let fd, _, _, _), .send(let fd, _, _),
             .sendmsg(let fd, _, _), .poll(let fd, _), .pollRepeating(let fd, _), .shutdown(let fd, _), .close(let fd):
            fd
        case .nop:
            nil
        }
    }
}
