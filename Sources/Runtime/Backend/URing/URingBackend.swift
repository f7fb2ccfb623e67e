#if canImport(Glibc)
import Glibc
#endif
import CURing

/// The io_uring backend: one ring per core, created on the core's thread (the ring is set up
/// `SINGLE_ISSUER` where the kernel allows it), plus an eventfd read kept armed on the ring so
/// other threads can wake a core parked in `io_uring_enter`.
final class URingBackend: IOBackend {
    let name = "io_uring"
    let features: URingFeatures

    private let ring: UnsafeMutablePointer<io_uring>
    private let wakeFD: Int32
    private let wakeBuffer: UnsafeMutablePointer<UInt64>
    private let cqes: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    private let batch = 256
    // State below is touched only on the core's thread: no dynamic exclusivity checks.
    /// Completions reaped while making room in a full queue, delivered by the next `poll`.
    @exclusivity(unchecked) private var deferred: [(UInt64, Int32, UInt32)] = []
    @exclusivity(unchecked) private(set) var submissionQueueFullCount = 0
    @exclusivity(unchecked) private var closed = false
    /// Whether the kernel flags pending task work (``pollIdle(_:)`` then skips needless entries).
    private let taskrunFlagged: Bool

    /// Sets up a ring with `entries` submission slots and `completionEntries` completion slots.
    ///
    /// Throws the setup's `errno` (`EPERM`, `ENOSYS`, `ENOMEM`, ...) so the runtime can fall back
    /// to epoll where io_uring is forbidden.
    init(entries: UInt32, completionEntries: UInt32) throws(IOError) {
        let ring = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
        ring.initialize(to: io_uring())
        var params = io_uring_params()
        // DEFER_TASKRUN (6.1) runs completion work only when the core enters the kernel to wait,
        // which is when a thread-per-core loop wants it; it needs SINGLE_ISSUER (6.0).
        let cooperative = CURING_SETUP_CQSIZE | CURING_SETUP_SUBMIT_ALL | CURING_SETUP_SINGLE_ISSUER
            | CURING_SETUP_COOP_TASKRUN | CURING_SETUP_TASKRUN_FLAG
        let preferred = cooperative | CURING_SETUP_DEFER_TASKRUN
        // Older kernels reject flags they do not know with EINVAL: retry with older sets.
        var rc: Int32 = -EINVAL
        var candidates = [preferred, cooperative, CURING_SETUP_CQSIZE, 0]
        if let choice = getenv("NET_URING_SETUP").map({ String(cString: $0) }) {
            // An override for measurements: "cooperative" or "basic" skips the newer flags.
            if choice == "cooperative" { candidates.removeFirst() }
            if choice == "basic" { candidates.removeFirst(2) }
        }
        for flags in candidates {
            params = io_uring_params()
            params.flags = flags
            params.cq_entries = max(completionEntries, entries * 2)
            rc = io_uring_queue_init_params(entries, ring, &params)
            if rc != -EINVAL { break }
        }
        guard rc == 0 else {
            ring.deallocate()
            throw IOError(code: -rc, operation: .ringSetup)
        }
        let efd = curing_eventfd()
        guard efd >= 0 else {
            io_uring_queue_exit(ring)
            ring.deallocate()
            throw IOError(code: -efd, operation: .eventfd)
        }
        self.ring = ring
        self.wakeFD = efd
        self.features = URingFeatures.probe(ring: ring, params: params)
        self.taskrunFlagged = params.flags & CURING_SETUP_TASKRUN_FLAG != 0
        self.wakeBuffer = .allocate(capacity: 1)
        self.wakeBuffer.initialize(to: 0)
        self.cqes = .allocate(capacity: batch)
        self.cqes.initialize(repeating: nil, count: batch)
        armWake()
    }

    deinit {
        close()
        wakeBuffer.deallocate()
        cqes.deallocate()
        ring.deallocate()
    }

    func close() {
        guard !closed else { return }
        closed = true
        io_uring_queue_exit(ring)
        Glibc.close(wakeFD)
    }

    private func armWake() {
        let sqe = nextSQE()
        io_uring_prep_read(sqe, wakeFD, wakeBuffer, 8, 0)
        io_uring_sqe_set_data64(sqe, ReservedToken.wake)
    }

    /// A free submission entry. When the queue is full, submits what is queued and, if the kernel
    /// still refuses (its completion backlog is full), reaps completions for later delivery.
    private func nextSQE() -> UnsafeMutablePointer<io_uring_sqe> {
        if let sqe = io_uring_get_sqe(ring) { return sqe }
        submissionQueueFullCount += 1
        while true {
            let rc = io_uring_submit(ring)
            if let sqe = io_uring_get_sqe(ring) { return sqe }
            if rc == -EBUSY || rc == -EAGAIN || rc >= 0 {
                reap { token, result, flags in deferred.append((token, result, flags)) }
            } else if rc != -EINTR {
                // The ring itself is broken; nothing sensible is left but to stop loudly.
                fatalError("io_uring_submit failed: \(-rc)")
            }
        }
    }

    func submit(_ operation: IOOperation, token: UInt64) {
        let sqe = nextSQE()
        switch operation {
        case .accept(let fd, let address, let length):
            io_uring_prep_accept(sqe, fd, address, length, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue))
        case .connect(let fd, let address, let length):
            io_uring_prep_connect(sqe, fd, address, length)
        case .recv(let fd, let buffer, let flags, let pollFirst):
            io_uring_prep_recv(sqe, fd, buffer.baseAddress, buffer.count, flags)
            if pollFirst { sqe.pointee.ioprio |= UInt16(CURING_RECVSEND_POLL_FIRST) }
        case .send(let fd, let buffer, let flags):
            io_uring_prep_send(sqe, fd, buffer.baseAddress, buffer.count, flags | Int32(MSG_NOSIGNAL))
        case .sendmsg(let fd, let message, let flags):
            io_uring_prep_sendmsg(sqe, fd, message, UInt32(bitPattern: flags | Int32(MSG_NOSIGNAL)))
        case .poll(let fd, let events):
            io_uring_prep_poll_add(sqe, fd, events)
        case .pollRepeating(let fd, let events):
            io_uring_prep_poll_multishot(sqe, fd, events)
        case .shutdown(let fd, let how):
            io_uring_prep_shutdown(sqe, fd, how)
        case .close(let fd):
            io_uring_prep_close(sqe, fd)
        case .nop:
            io_uring_prep_nop(sqe)
        }
        io_uring_sqe_set_data64(sqe, token)
    }

    func cancel(token: UInt64) {
        let sqe = nextSQE()
        io_uring_prep_cancel64(sqe, token, 0)
        io_uring_sqe_set_data64(sqe, ReservedToken.ignore)
    }

    func forget(fd: Int32) {}  // the ring keeps nothing per descriptor

    func cancelAll(fd: Int32) {
        let sqe = nextSQE()
        io_uring_prep_cancel_fd(sqe, fd, CURING_ASYNC_CANCEL_ALL)
        io_uring_sqe_set_data64(sqe, ReservedToken.ignore)
    }

    func poll(timeout: UInt64?, _ handler: (UInt64, Int32, UInt32) -> Void) {
        if !deferred.isEmpty {
            let ready = deferred
            deferred.removeAll(keepingCapacity: true)
            for (token, result, flags) in ready { handler(token, result, flags) }
        }
        if let timeout, io_uring_cq_ready(ring) == 0 {
            if timeout == .max {
                _ = io_uring_submit_and_wait(ring, 1)
            } else {
                var ts = __kernel_timespec(
                    tv_sec: Int64(timeout / 1_000_000_000), tv_nsec: Int64(timeout % 1_000_000_000))
                var cqe: UnsafeMutablePointer<io_uring_cqe>?
                _ = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, nil)
            }
        } else if io_uring_sq_ready(ring) > 0 {
            _ = io_uring_submit(ring)  // liburing adds GETEVENTS when the TASKRUN flag is up
        } else {
            // A busy core that never parks would otherwise never see a completion that came late.
            takeDeferredWork(whenUnknown: false)
        }
        reap(handler)
    }

    /// Under DEFER_TASKRUN or COOP_TASKRUN a completion waits as task work until this thread
    /// enters the kernel. With no completion ready, enters (`io_uring_get_events`) when the
    /// TASKRUN flag says work waits, or, on a ring without the flag, when `whenUnknown`.
    private func takeDeferredWork(whenUnknown: Bool) {
        guard io_uring_cq_ready(ring) == 0 else { return }
        if taskrunFlagged ? curing_taskrun_pending(ring) != 0 : whenUnknown { _ = curing_get_events(ring) }
    }

    func pollIdle(_ handler: (UInt64, Int32, UInt32) -> Void) -> Bool {
        if !deferred.isEmpty {
            poll(timeout: nil, handler)
            return true
        }
        if io_uring_sq_ready(ring) > 0 { _ = io_uring_submit(ring) }
        takeDeferredWork(whenUnknown: true)  // polling idle: without the flag, ask
        if io_uring_cq_ready(ring) == 0 { return false }
        reap(handler)
        return true
    }

    private func reap(_ handler: (UInt64, Int32, UInt32) -> Void) {
        while true {
            let count = Int(io_uring_peek_batch_cqe(ring, cqes, UInt32(batch)))
            if count == 0 { return }
            for index in 0..<count {
                let cqe = cqes[index]!.pointee
                switch cqe.user_data {
                case ReservedToken.wake:
                    armWake()
                case let token where ReservedToken.isReserved(token):
                    break
                default:
                    handler(cqe.user_data, cqe.res, cqe.flags)
                }
            }
            io_uring_cq_advance(ring, UInt32(count))
            if count < batch { return }
        }
    }

    var waker: Waker { Waker(fd: wakeFD) }
}
