#if canImport(Glibc)
import Glibc
#endif
import CURing
import DequeModule

/// The epoll backend, for where io_uring is forbidden: completion semantics built on readiness.
///
/// Each operation is first tried at once as a non-blocking syscall; one that would block waits on
/// its descriptor (registered edge-triggered, once) in a per-descriptor queue for its direction,
/// so operations on one descriptor complete in order. Completions found at submission are
/// delivered by the next ``poll(timeout:_:)``, never re-entrantly.
final class EpollBackend: IOBackend {
    let name = "epoll"
    private let epollFD: Int32
    private let wakeFD: Int32
    private var events: [epoll_event]
    /// Completions ready for delivery.
    private var ready: [(UInt64, Int32, UInt32)] = []
    private var descriptors: [Int32: Descriptor] = [:]
    /// Which descriptor each waiting operation waits on, for cancellation.
    private var waitingOn: [UInt64: Int32] = [:]
    private(set) var submissionQueueFullCount = 0
    private var closed = false

    private struct Waiter {
        let token: UInt64
        let operation: IOOperation
    }

    private struct Descriptor {
        var registered = false
        var readers = Deque<Waiter>()
        var writers = Deque<Waiter>()
    }

    private static let wakeMarker = UInt64.max

    init() throws(IOError) {
        let epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw IOError(code: errno, operation: .epoll) }
        let efd = curing_eventfd()
        guard efd >= 0 else {
            Glibc.close(epollFD)
            throw IOError(code: -efd, operation: .eventfd)
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = Self.wakeMarker
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, efd, &event) == 0 else {
            let code = errno
            Glibc.close(efd)
            Glibc.close(epollFD)
            throw IOError(code: code, operation: .epoll)
        }
        self.epollFD = epollFD
        self.wakeFD = efd
        self.events = [epoll_event](repeating: epoll_event(), count: 256)
    }

    deinit { close() }

    var waker: Waker { Waker(fd: wakeFD) }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(wakeFD)
        Glibc.close(epollFD)
    }

    // MARK: Submission

    func submit(_ operation: IOOperation, token: UInt64) {
        switch operation {
        case .nop:
            ready.append((token, 0, 0))
        case .shutdown(let fd, let how):
            ready.append((token, Glibc.shutdown(fd, how) == 0 ? 0 : -errno, 0))
        case .close(let fd):
            cancelAll(fd: fd)
            if descriptors.removeValue(forKey: fd)?.registered == true {
                _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
            }
            ready.append((token, Glibc.close(fd) == 0 ? 0 : -errno, 0))
        case .connect(let fd, let address, let length):
            if Glibc.connect(fd, address, length) == 0 {
                ready.append((token, 0, 0))
            } else if errno == EINPROGRESS || errno == EAGAIN {
                // Writable means the handshake ended; SO_ERROR then tells how.
                wait(Waiter(token: token, operation: operation), fd: fd, writer: true)
            } else {
                ready.append((token, -errno, 0))
            }
        default:
            let fd = operation.fd! // '!' is fine: every remaining case has a descriptor.
            let writer = Self.isWriter(operation)
            // Keep order per direction: only try at once when nobody waits ahead.
            if let state = descriptors[fd], !(writer ? state.writers.isEmpty : state.readers.isEmpty) {
                wait(Waiter(token: token, operation: operation), fd: fd, writer: writer)
                return
            }
            if let result = attempt(operation) {
                ready.append((token, result, 0))
            } else {
                wait(Waiter(token: token, operation: operation), fd: fd, writer: writer)
            }
        }
    }

    private static func isWriter(_ operation: IOOperation) -> Bool {
        switch operation {
        case .send, .sendmsg, .connect: true
        case .poll(_, let events), .pollRepeating(_, let events): events & UInt32(POLLOUT) != 0 && events & UInt32(POLLIN) == 0
        default: false
        }
    }

    /// Tries an operation without blocking: its result or `-errno`, or `nil` if it would block.
    private func attempt(_ operation: IOOperation) -> Int32? {
        let result: Int
        switch operation {
        case .accept(let fd, let address, let length):
            result = Int(curing_accept4(fd, address, length, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)))
        case .recv(let fd, let buffer, let flags, _):
            result = Glibc.recv(fd, buffer.baseAddress, buffer.count, flags | Int32(MSG_DONTWAIT))
        case .send(let fd, let buffer, let flags):
            result = Glibc.send(fd, buffer.baseAddress, buffer.count, flags | Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
        case .sendmsg(let fd, let message, let flags):
            result = Glibc.sendmsg(fd, message, flags | Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
        case .connect(let fd, _, _):
            var code: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) == 0 else { return -errno }
            if code == EINPROGRESS || code == EALREADY { return nil }
            return -code
        // One readiness per submission here: the loop arms a repeating poll again after each.
        case .poll(let fd, let events), .pollRepeating(let fd, let events):
            var entry = pollfd(fd: fd, events: Int16(truncatingIfNeeded: events), revents: 0)
            let n = Glibc.poll(&entry, 1, 0)
            if n < 0 { return errno == EINTR ? nil : -errno }
            if n == 0 { return nil }
            if entry.revents & Int16(POLLNVAL) != 0 { return -EBADF }
            return Int32(UInt16(bitPattern: entry.revents))
        case .shutdown, .close, .nop:
            return 0
        }
        if result >= 0 { return Int32(truncatingIfNeeded: result) }
        let code = errno
        return code == EAGAIN || code == EWOULDBLOCK || code == EINTR ? nil : -code
    }

    private func wait(_ waiter: Waiter, fd: Int32, writer: Bool) {
        var state = descriptors[fd] ?? Descriptor()
        if !state.registered {
            var event = epoll_event()
            event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
            event.data.fd = fd
            if epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) != 0 && errno != EEXIST {
                ready.append((waiter.token, -errno, 0))
                return
            }
            state.registered = true
        }
        if writer { state.writers.append(waiter) } else { state.readers.append(waiter) }
        descriptors[fd] = state
        waitingOn[waiter.token] = fd
    }

    // MARK: Cancellation

    func cancel(token: UInt64) {
        guard let fd = waitingOn.removeValue(forKey: token), var state = descriptors[fd] else { return }
        if let i = state.readers.firstIndex(where: { $0.token == token }) {
            state.readers.remove(at: i)
        } else if let i = state.writers.firstIndex(where: { $0.token == token }) {
            state.writers.remove(at: i)
        }
        descriptors[fd] = state
        ready.append((token, -ECANCELED, 0))
    }

    func forget(fd: Int32) {
        cancelAll(fd: fd)
        // A registration left behind would make a later descriptor with this number look
        // registered, and its waits would never be woken.
        if descriptors.removeValue(forKey: fd)?.registered == true {
            _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, nil)
        }
    }

    func cancelAll(fd: Int32) {
        guard var state = descriptors[fd] else { return }
        for waiter in state.readers + state.writers {
            waitingOn[waiter.token] = nil
            ready.append((waiter.token, -ECANCELED, 0))
        }
        state.readers.removeAll()
        state.writers.removeAll()
        descriptors[fd] = state
    }

    // MARK: Waiting

    func poll(timeout: UInt64?, _ handler: (UInt64, Int32, UInt32) -> Void) {
        var milliseconds: Int32 = 0
        if let timeout, ready.isEmpty {
            // Round up, so a timer never fires early.
            milliseconds = timeout == .max ? -1 : Int32(clamping: (timeout + 999_999) / 1_000_000)
        }
        let count = events.withUnsafeMutableBufferPointer {
            epoll_wait(epollFD, $0.baseAddress, Int32($0.count), milliseconds)
        }
        if count > 0 {
            for i in 0..<Int(count) {
                let event = events[i]
                if event.data.u64 == Self.wakeMarker {
                    var value: UInt64 = 0
                    _ = Glibc.read(wakeFD, &value, 8)
                    continue
                }
                let fd = event.data.fd
                let bits = event.events
                let failed = bits & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
                if failed || bits & (EPOLLIN.rawValue | EPOLLRDHUP.rawValue) != 0 {
                    progress(fd, writers: false)
                } else if bits & EPOLLOUT.rawValue != 0 && readerHeadWantsWritable(fd) {
                    progress(fd, writers: false)  // a poll for both directions waits with the readers
                }
                if failed || bits & EPOLLOUT.rawValue != 0 { progress(fd, writers: true) }
            }
        }
        while !ready.isEmpty {
            let batch = ready
            ready.removeAll(keepingCapacity: true)
            for (token, result, flags) in batch { handler(token, result, flags) }
        }
    }

    func pollIdle(_ handler: (UInt64, Int32, UInt32) -> Void) -> Bool {
        var reported = false
        poll(timeout: nil) { token, result, flags in
            reported = true
            handler(token, result, flags)
        }
        return reported
    }

    /// Whether the first waiting reader of `fd` is a poll that writability completes too (one
    /// for `POLLIN | POLLOUT`, queued with the readers).
    private func readerHeadWantsWritable(_ fd: Int32) -> Bool {
        switch descriptors[fd]?.readers.first?.operation {
        case .poll(_, let events)?, .pollRepeating(_, let events)?: events & UInt32(POLLOUT) != 0
        default: false
        }
    }

    /// Retries the waiting operations of one direction in order until one would block.
    private func progress(_ fd: Int32, writers: Bool) {
        guard var state = descriptors[fd] else { return }
        while let waiter = writers ? state.writers.first : state.readers.first {
            guard let result = attempt(waiter.operation) else { break }
            if writers { state.writers.removeFirst() } else { state.readers.removeFirst() }
            waitingOn[waiter.token] = nil
            ready.append((waiter.token, result, 0))
        }
        descriptors[fd] = state
    }
}
