/// What a core's event loop needs from the kernel interface under it: io_uring
/// (``URingBackend``) or, where io_uring is forbidden, epoll.
///
/// A backend is owned by one core and used only on that core's thread; other threads reach it
/// only through its ``waker``. Completions are reported through the handler given to ``poll(timeout:_:)``
/// as `(token, result, flags)`, where `result` is the syscall's return value or `-errno`.
protocol IOBackend: AnyObject {
    /// The backend's name for logs (`io_uring`, `epoll`).
    var name: String { get }

    /// Starts an operation. Its completion is reported later with `token`, exactly once, even if
    /// the operation is cancelled (then usually with `-ECANCELED`).
    func submit(_ operation: IOOperation, token: UInt64)

    /// Asks the kernel to cancel the operation started with `token`. Harmless if it has completed.
    func cancel(token: UInt64)

    /// Asks the kernel to cancel every operation in flight on `fd`.
    func cancelAll(fd: Int32)

    /// Drops what the backend remembers about `fd`, which is about to be closed other than by a
    /// `.close` operation (its number may then be reused for another file).
    func forget(fd: Int32)

    /// Hands queued work to the kernel and reports what has completed.
    ///
    /// - Parameter timeout: `nil` returns at once; otherwise blocks until something completes,
    ///   ``wake()`` is called or `timeout` nanoseconds pass (`UInt64.max`: no timeout).
    func poll(timeout: UInt64?, _ handler: (UInt64, Int32, UInt32) -> Void)

    /// Reports what has completed, for a core polling while idle: never blocks, and enters the
    /// kernel only when it has something for us (or cannot tell without entering it).
    ///
    /// - Returns: whether anything was reported or reaped.
    func pollIdle(_ handler: (UInt64, Int32, UInt32) -> Void) -> Bool

    /// What other threads use to interrupt a blocking ``poll(timeout:_:)``.
    var waker: Waker { get }

    /// Releases the backend's descriptors. Called once, on the core's thread, after every
    /// operation has completed.
    func close()

    /// How many times a submission found the submission queue full (and submitted, reaped and
    /// retried instead).
    var submissionQueueFullCount: Int { get }
}

/// The highest tokens are the backend's own (its wake-up read, its cancel requests; liburing
/// itself uses `UInt64.max` for internal timeouts); the core never uses them for operations.
enum ReservedToken {
    static let wake: UInt64 = .max - 2
    static let ignore: UInt64 = .max - 3
    static func isReserved(_ token: UInt64) -> Bool { token >= ignore }
}

#if canImport(Glibc)
import Glibc
#endif

/// Wakes a core parked in its backend's wait, from any thread, by writing to an eventfd that the
/// backend keeps watched. The core's executor calls it only while holding its inbox lock, and
/// closes the eventfd only after marking itself stopped under that lock, so a wake never writes
/// to a descriptor number that has been closed and reused.
struct Waker: Sendable {
    let fd: Int32

    func wake() {
        var one: UInt64 = 1
        // EAGAIN means the counter is already non-zero: a wake-up is pending anyway.
        _ = Glibc.write(fd, &one, 8)
    }
}
