public import Glibc

/// I/O on a core. These methods are `nonisolated` and, under `NonisolatedNonsendingByDefault`,
/// run on their caller's executor: any code running on the core (isolated to it, or a task that
/// prefers its executor) calls them directly, with non-Sendable buffers, and no hop. Called from
/// another thread they throw ``RuntimeError/notOnCore(_:)``.
extension Core {
    /// The loop, for a caller on this core's thread.
    @inline(__always)
    nonisolated func loopOnThisThread(_ name: IOError.Operation) throws -> CoreLoop {
        guard executor.isOnCoreThread else { throw notOnCoreError(name) }
        return executor.loop
    }

    /// The error of `name` called off this core's thread.
    nonisolated func notOnCoreError(_ name: IOError.Operation) -> RuntimeError {
        RuntimeError.notOnCore("\(name) called off core \(index)'s thread; use Runtime.run(on:)")
    }

    /// Runs one operation on the core's backend and returns its completion (`result >= 0`).
    /// See ``performOperation(on:_:deadline:cancellable:prepare:read:)``.
    @inline(__always)
    nonisolated func perform<R>(
        _ name: IOError.Operation, deadline: Deadline? = nil, cancellable: Bool = true,
        prepare: (UnsafeMutableRawPointer) -> IOOperation,
        read: (Completion, UnsafeMutableRawPointer) -> R
    ) async throws -> R {
        try await performOperation(on: self, name, deadline: deadline, cancellable: cancellable, prepare: prepare, read: read)
    }

    /// ``perform(_:deadline:prepare:read:)`` for operations that need no scratch memory.
    @inline(__always)
    nonisolated func perform(
        _ operation: IOOperation, _ name: IOError.Operation, deadline: Deadline? = nil, cancellable: Bool = true
    ) async throws -> Int32 {
        try await performOperation(
            on: self, name, deadline: deadline, cancellable: cancellable,
            prepare: { _ in operation }, read: { completion, _ in completion.result })
    }

    /// Accepts one connection on a listening socket. The new socket is non-blocking and
    /// close-on-exec.
    public nonisolated func accept(_ listener: Int32) async throws -> (fd: Int32, peer: SocketAddress) {
        let loop = try loopOnThisThread(.accept)
        return try await perform(.accept) { scratch in
            let length = scratch.bindMemory(to: socklen_t.self, capacity: 1)
            length.pointee = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let address = (scratch + 16).bindMemory(to: sockaddr.self, capacity: 1)
            return .accept(fd: listener, address: address, length: length)
        } read: { completion, scratch in
            let length = scratch.load(as: socklen_t.self)
            let storage = (scratch + 16).load(as: sockaddr_storage.self)
            loop.ownedDescriptors.insert(completion.result)
            return (completion.result, SocketAddress(storage: storage, length: length))
        }
    }

    /// Makes the core own `fd`: it is closed when the core stops unless closed with
    /// ``close(_:)`` or released first. Sockets from ``accept(_:)`` and ``connectTCP(to:timeout:)``
    /// are owned already.
    public nonisolated func adopt(_ fd: Int32) throws {
        try loopOnThisThread(.close).ownedDescriptors.insert(fd)
    }

    /// Gives up ownership of `fd` (for example before handing it to another owner, or before
    /// closing it without ``close(_:)``): the core forgets it; returns whether the core owned it.
    /// A descriptor the core has waited on must be closed with ``close(_:)`` or released first.
    @discardableResult
    public nonisolated func release(_ fd: Int32) throws -> Bool {
        let loop = try loopOnThisThread(.close)
        loop.backend.forget(fd: fd)
        return loop.ownedDescriptors.remove(fd) != nil
    }

    /// Connects a socket to `address`, failing with `ETIMEDOUT` after `timeout`.
    public nonisolated func connect(_ fd: Int32, to address: SocketAddress, timeout: Duration? = nil) async throws {
        let deadline = timeout.map { Deadline.now + $0 }
        try await perform(.connect, deadline: deadline) { scratch in
            scratch.storeBytes(of: address.storage, as: sockaddr_storage.self)
            return .connect(fd: fd, address: UnsafePointer(scratch.assumingMemoryBound(to: sockaddr.self)), length: address.length)
        } read: { _, _ in }
    }

    /// Creates a TCP socket and connects it to `address`; closes it again on failure.
    public nonisolated func connectTCP(to address: SocketAddress, timeout: Duration? = nil) async throws -> Int32 {
        let loop = try loopOnThisThread(.connect)
        let fd = try Socket.makeTCP(family: address.family)
        loop.ownedDescriptors.insert(fd)
        do {
            try await connect(fd, to: address, timeout: timeout)
            return fd
        } catch {
            loop.ownedDescriptors.remove(fd)
            loop.backend.forget(fd: fd)
            Socket.closeNow(fd)
            throw error
        }
    }

    /// Receives into `buffer`; returns the byte count, 0 at end of stream.
    ///
    /// `buffer` must stay valid until the call returns (it does: the call waits for the
    /// kernel's completion even when cancelled).
    /// - Parameter pollFirst: wait for readability before the first attempt; saves work when no
    ///   data is expected yet (the reply in a ping-pong), costs a little when data is waiting.
    /// - Parameter cancellable: false for a receive that task cancellation does not end (closing
    ///   or shutting down the socket, the deadline and the core's stop still do): it costs no
    ///   cancellation handler, which a receive loop pays on every message otherwise.
    public nonisolated func recv(
        _ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, flags: Int32 = 0, deadline: Deadline? = nil,
        pollFirst: Bool = false, cancellable: Bool = true
    ) async throws -> Int {
        Int(try await perform(
            .recv(fd: fd, buffer: buffer, flags: flags, pollFirst: pollFirst), .recv, deadline: deadline,
            cancellable: cancellable))
    }

    /// Sends once; returns how many bytes the kernel took, which may be fewer than asked.
    public nonisolated func send(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, flags: Int32 = 0) async throws -> Int {
        Int(try await perform(.send(fd: fd, buffer: buffer, flags: flags), .send))
    }

    /// Sends all of `buffer`, resubmitting after short writes.
    public nonisolated func sendAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, flags: Int32 = 0) async throws {
        var rest = buffer
        while !rest.isEmpty {
            let sent = try await send(fd, rest, flags: flags)
            if sent == 0 { throw IOError(code: EPIPE, operation: .send) }
            rest = UnsafeRawBufferPointer(rebasing: rest[sent...])
        }
    }

    /// One vectored send (`sendmsg`); returns how many bytes the kernel took. Past
    /// ``IOVectors/maximumCount`` vectors only the first ones go (a short write), so any count
    /// is accepted.
    public nonisolated func send(_ fd: Int32, vectors: UnsafeMutableBufferPointer<iovec>, flags: Int32 = 0) async throws -> Int {
        try await perform(.sendmsg) { scratch in
            var message = msghdr()
            message.msg_iov = vectors.baseAddress
            message.msg_iovlen = min(vectors.count, IOVectors.maximumCount)
            scratch.storeBytes(of: message, as: msghdr.self)
            return .sendmsg(fd: fd, message: UnsafePointer(scratch.assumingMemoryBound(to: msghdr.self)), flags: flags)
        } read: { completion, _ in Int(completion.result) }
    }

    /// Sends every byte of `vectors`, resubmitting after short writes. The vectors are advanced in
    /// place past what was sent, so their contents are unspecified afterwards.
    public nonisolated func sendAll(_ fd: Int32, vectors: UnsafeMutableBufferPointer<iovec>, flags: Int32 = 0) async throws {
        var rest = vectors
        IOVectors.dropEmpty(&rest)
        while !rest.isEmpty {
            let sent = try await send(fd, vectors: rest, flags: flags)
            if sent == 0 { throw IOError(code: EPIPE, operation: .sendmsg) }
            IOVectors.advance(&rest, by: sent)
        }
    }

    /// Waits until `fd` has any of `events` (`POLLIN`, `POLLOUT`, ...) and returns those it has.
    /// For descriptors the runtime does not own, such as an RDMA completion channel.
    ///
    /// - Parameter cancellable: `false` for a long-lived task that nobody cancels (it ends when
    ///   the core stops): its waits then cost no cancellation handler.
    public nonisolated func poll(_ fd: Int32, events: Int16, cancellable: Bool = true) async throws -> Int16 {
        Int16(truncatingIfNeeded: try await perform(
            .poll(fd: fd, events: UInt32(UInt16(bitPattern: events))), .poll, cancellable: cancellable))
    }

    /// Waits until `fd` is readable. See ``poll(_:events:cancellable:)`` for `cancellable`.
    public nonisolated func waitReadable(_ fd: Int32, cancellable: Bool = true) async throws {
        _ = try await poll(fd, events: Int16(POLLIN), cancellable: cancellable)
    }

    /// Waits until `fd` is writable.
    public nonisolated func waitWritable(_ fd: Int32) async throws {
        _ = try await poll(fd, events: Int16(POLLOUT))
    }

    /// Shuts down one or both directions of a socket (`SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`).
    public nonisolated func shutdown(_ fd: Int32, how: Int32 = Int32(SHUT_RDWR)) async throws {
        _ = try await perform(.shutdown(fd: fd, how: how), .shutdown)
    }

    /// Cancels every operation in flight on `fd` without closing it: their callers get
    /// `ECANCELED`. Keep the descriptor open until they have all returned, so that none of them
    /// goes on to use its number after a close (the number may by then name another file).
    public nonisolated func cancelOperations(on fd: Int32) throws {
        try loopOnThisThread(.close).backend.cancelAll(fd: fd)
    }

    /// Cancels every operation in flight on `fd`, then closes it (and the core no longer owns it).
    ///
    /// `close(2)` alone does not stop operations in flight (each holds a reference to the file),
    /// so they are cancelled first; their callers get `ECANCELED` as an ``IOError``.
    public nonisolated func close(_ fd: Int32) async throws {
        let loop = try loopOnThisThread(.close)
        loop.ownedDescriptors.remove(fd)
        loop.backend.cancelAll(fd: fd)
        // Not cancellable: a cancelled task that closes its socket on the way out must still close it.
        _ = try await perform(.close(fd: fd), .close, cancellable: false)
    }

    /// A no-op round trip through the backend (a hop through the kernel and back).
    public nonisolated func nop() async throws {
        _ = try await perform(.nop, .poll)
    }
}

/// Helpers for arrays of `iovec`.
public enum IOVectors {
    /// The most vectors one `sendmsg` takes (Linux's `UIO_MAXIOV`, 1,024); more fail with
    /// `EMSGSIZE`. The runtime's vectored sends pass at most this many and report a short write.
    public static let maximumCount = 1024

    /// Advances `vectors` past `count` bytes: drops the vectors sent whole and trims the first
    /// one sent in part.
    public static func advance(_ vectors: inout UnsafeMutableBufferPointer<iovec>, by count: Int) {
        var left = count
        var first = 0
        while first < vectors.count, left >= vectors[first].iov_len {
            left -= vectors[first].iov_len
            first += 1
        }
        vectors = UnsafeMutableBufferPointer(rebasing: vectors[first...])
        if left > 0, !vectors.isEmpty {
            vectors[0].iov_base = vectors[0].iov_base.map { $0 + left }
            vectors[0].iov_len -= left
        }
        dropEmpty(&vectors)
    }

    /// Drops leading empty vectors.
    static func dropEmpty(_ vectors: inout UnsafeMutableBufferPointer<iovec>) {
        var first = 0
        while first < vectors.count, vectors[first].iov_len == 0 { first += 1 }
        if first > 0 { vectors = UnsafeMutableBufferPointer(rebasing: vectors[first...]) }
    }

    /// The total byte count of `vectors`.
    public static func byteCount(_ vectors: UnsafeMutableBufferPointer<iovec>) -> Int {
        vectors.reduce(0) { $0 + $1.iov_len }
    }
}

/// Runs one operation on `core`'s backend and returns its completion (`result >= 0`).
///
/// `prepare` builds the operation; it may place what the kernel reads or writes beside the
/// caller's buffers in the operation's scratch memory, which `read` may inspect after the
/// completion. Cancelling the calling task cancels the operation in the kernel; the call still
/// returns only when the operation's own completion has arrived, so whatever its pointers refer
/// to is never touched by the kernel after the call returns.
///
/// It is nonisolated(nonsending): it runs in its caller's isolation and, without a cancellation
/// handler, costs one executor check after the completion (an explicit `isolated` parameter here
/// cost two more per operation: one on entry, one on the way back).
///
/// - Throws: `CancellationError` if the task was cancelled, ``IOError`` with `ETIMEDOUT` if
///   `deadline` passed first, otherwise ``IOError`` with the operation's `errno`.
@inline(__always)
func performOperation<R>(
    on core: Core, _ name: IOError.Operation, deadline: Deadline? = nil, cancellable: Bool = true,
    prepare: (UnsafeMutableRawPointer) -> IOOperation,
    read: (Completion, UnsafeMutableRawPointer) -> R
) async throws -> R {
    if cancellable { try Task.checkCancellation() }
    let loop = try core.loopOnThisThread(name)
    let id = loop.table.reserve()
    let scratch = loop.table.scratch(id)
    let operation = prepare(scratch)
    if let deadline { loop.timers.schedule(id, at: deadline, action: .expire) }
    let executor = core.executor
    let completion: Completion
    if cancellable {
        completion = await awaitCancellable(id, executor: executor) { loop.start(id, operation, continuation: $0) }
    } else {
        // No handler: adding and removing one costs the task's status-record lock each time.
        completion = await withCoreContinuation { (continuation: UnsafeContinuation<Completion, Never>) in
            loop.start(id, operation, continuation: continuation)
        }
    }
    assert(executor.isOnCoreThread, "\(name) resumed off core \(core.index)'s thread")
    defer { loop.table.release(id) }
    if completion.result < 0 {
        let code = -completion.result
        if completion.timedOut { throw IOError(code: ETIMEDOUT, operation: name) }
        if code == ECANCELED || code == EINTR {
            if Task.isCancelled { throw CancellationError() }
            if loop.isStopping {
                throw RuntimeError.shutDown("core \(core.index) stopped while \(name) was in flight")
            }
        }
        throw IOError(code: code, operation: name)
    }
    return read(completion, scratch)
}

/// Awaits the completion of operation `id`, which `start` starts with the continuation it is
/// given, cancelling the operation (`executor.requestCancel`) if the task is cancelled.
///
/// `isolation` is the caller's (the core's actor, or `nil` for nonisolated code that prefers the
/// core's executor), taken explicitly and used inside the handler's operation: with
/// `NonisolatedNonsendingByDefault`, Swift 6.3 runs a plain closure given to
/// `withTaskCancellationHandler` on the generic executor and does not come back, which moved
/// tasks off their core (found by the TCP tests). A closure that uses the isolated parameter is
/// isolated to it.
@inline(__always)
func awaitCancellable(
    _ id: OperationID, executor: CoreExecutor, isolation: isolated (any Actor)? = #isolation,
    start: (UnsafeContinuation<Completion, Never>) -> Void
) async -> Completion {
    await withTaskCancellationHandler {
        _ = isolation
        return await withUnsafeContinuation(start)
    } onCancel: {
        executor.requestCancel(id)
    }
}
