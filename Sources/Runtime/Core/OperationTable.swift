/// Identifies one operation in flight on a core: a slot index plus the slot's generation, so a
/// late cancel or timer aimed at a slot that has since been reused is recognised and ignored.
struct OperationID: Hashable, Sendable {
    let index: UInt32
    let generation: UInt32

    /// The 64-bit token the backend carries as the operation's `user_data`.
    var token: UInt64 { UInt64(generation) << 32 | UInt64(index) }

    init(index: UInt32, generation: UInt32) {
        self.index = index
        self.generation = generation
    }

    init(token: UInt64) {
        self.index = UInt32(truncatingIfNeeded: token)
        self.generation = UInt32(truncatingIfNeeded: token >> 32)
    }
}

/// How an operation ended: the syscall's result or `-errno`, the completion's flags, and whether
/// its own deadline (not its task's cancellation) ended it.
struct Completion {
    var result: Int32
    var flags: UInt32 = 0
    var timedOut = false
}

/// The core's table of operations in flight. Slots are reused (no allocation per operation at
/// steady state); each holds the continuation its completion resumes. Used on the core's thread
/// only; its lists are ``CoreList``s, which need no uniqueness check per change.
struct OperationTable: ~Copyable {
    enum State: UInt8 {
        case free
        /// Reserved by a caller that has not started the operation yet.
        case reserved
        /// Handed to the backend; its completion will come.
        case inFlight
        /// A sleep, kept in the timer queue rather than the backend.
        case sleeping
        /// Completed; the slot (and its scratch memory) stays with its caller until released.
        case completed
    }

    struct Slot {
        var generation: UInt32 = 1
        var state: State = .free
        var cancelRequested = false
        var timedOut = false
        /// A wake that came before the sleep began (the waiter had not yet suspended).
        var earlyWake: Int32?
        // Who the completion goes to, while the operation is pending: a task, or a readiness
        // watch's handler. Kept apart rather than as a `Waiter`: a continuation is a plain
        // pointer, and a task's completion then moves no reference-counted value at all.
        /// The task suspended on the operation.
        var continuation: UnsafeContinuation<Completion, Never>?
        /// The handler its completion calls: a readiness watch's, or that of
        /// ``Core/receive(_:into:flags:deadline:pollFirst:then:)``.
        var handler: (any CoreCompletionHandler)?
        /// A repeating watch's descriptor; -1 for any other operation.
        var watchFD: Int32 = -1
    }

    /// Who an operation's completion goes to.
    enum Waiter {
        /// A task suspended on the operation.
        case task(UnsafeContinuation<Completion, Never>)
        /// A handler called from the loop (``Core/whenReadable(_:_:)``,
        /// ``Core/receive(_:into:flags:deadline:pollFirst:then:)``).
        case handler(any CoreCompletionHandler)
        /// A repeating readiness watch's handler (``Core/watchReadable(_:_:)``) and its
        /// descriptor: the operation stays in flight across its completions.
        case repeating(any CoreCompletionHandler, fd: Int32)
    }

    private var slots = CoreList<Slot>(capacity: 64)
    private var freeList = CoreList<UInt32>(capacity: 64)
    private var scratchChunks: [UnsafeMutableRawPointer] = []
    /// Bytes of scratch memory per slot: room for a `sockaddr_storage` (128) and a `msghdr` (56).
    static let scratchSize = 256
    private static let slotsPerChunk = 256
    /// Operations reserved, in flight or sleeping, or completed and not yet released.
    private(set) var activeCount = 0
    /// Operations handed to the backend or sleeping, whose completion is still to come.
    private(set) var pendingCount = 0

    mutating func reserve() -> OperationID {
        let index: UInt32
        if let reused = freeList.popLast() {
            index = reused
        } else {
            index = UInt32(slots.count)
            slots.append(Slot())
            if slots.count > scratchChunks.count * Self.slotsPerChunk {
                let chunk = UnsafeMutableRawPointer.allocate(
                    byteCount: Self.scratchSize * Self.slotsPerChunk, alignment: 16)
                scratchChunks.append(chunk)
            }
        }
        slots[Int(index)].state = .reserved
        slots[Int(index)].cancelRequested = false
        slots[Int(index)].timedOut = false
        slots[Int(index)].earlyWake = nil
        activeCount += 1
        return OperationID(index: index, generation: slots[Int(index)].generation)
    }

    /// Memory that belongs to the operation until it is released: for what the kernel reads or
    /// writes beside the caller's buffer (an address, a `msghdr`). It never moves.
    func scratch(_ id: OperationID) -> UnsafeMutableRawPointer {
        let i = Int(id.index)
        return scratchChunks[i / Self.slotsPerChunk] + (i % Self.slotsPerChunk) * Self.scratchSize
    }

    /// Frees the scratch chunks. Called once, when the core stops, and only if every slot was
    /// released (a task that has yet to read its completion may still use its scratch memory).
    mutating func deallocate() {
        guard activeCount == 0 else { return }
        for chunk in scratchChunks { chunk.deallocate() }
        scratchChunks.removeAll()
    }

    /// The slot's state if `id` still names it, else `nil` (the operation has ended).
    func state(of id: OperationID) -> State? {
        let i = Int(id.index)
        guard i < slots.count else { return nil }
        // Field by field: a copy of the slot would retain and release its waiter's handler.
        let state = slots[i].state
        return slots[i].generation == id.generation && state != .free ? state : nil
    }

    func isCancelRequested(_ id: OperationID) -> Bool { slots[Int(id.index)].cancelRequested }

    mutating func markCancelRequested(_ id: OperationID) { slots[Int(id.index)].cancelRequested = true }

    mutating func markTimedOut(_ id: OperationID) { slots[Int(id.index)].timedOut = true }

    /// A wake for a reserved slot, kept until its sleep begins; the first one counts.
    func earlyWake(of id: OperationID) -> Int32? { slots[Int(id.index)].earlyWake }

    mutating func setEarlyWake(_ id: OperationID, result: Int32) {
        if slots[Int(id.index)].earlyWake == nil { slots[Int(id.index)].earlyWake = result }
    }

    mutating func begin(_ id: OperationID, state: State, continuation: UnsafeContinuation<Completion, Never>) {
        slots[Int(id.index)].state = state
        pendingCount += 1
        slots[Int(id.index)].continuation = continuation
    }

    /// Starts an operation whose completion calls `handler` rather than resuming a task: once,
    /// or (a repeating watch, with `repeatingOn`, the watched descriptor) at each completion
    /// until it ends.
    mutating func beginHandled(_ id: OperationID, handler: any CoreCompletionHandler, repeatingOn fd: Int32?) {
        let i = Int(id.index)
        slots[i].state = .inFlight
        pendingCount += 1
        slots[i].handler = handler
        slots[i].watchFD = fd ?? -1
    }

    /// The handler of pending operation `id` if it is a repeating watch (the caller has checked
    /// that `id` still names its slot).
    func repeatingHandler(of id: OperationID) -> (any CoreCompletionHandler)? {
        let i = Int(id.index)
        return slots[i].watchFD >= 0 ? slots[i].handler : nil
    }

    /// The handler and descriptor of repeating watch `id`, if `id` is one still in flight.
    func repeatingWatch(_ id: OperationID) -> (handler: any CoreCompletionHandler, fd: Int32)? {
        guard state(of: id) == .inFlight, let handler = repeatingHandler(of: id) else { return nil }
        return (handler, slots[Int(id.index)].watchFD)
    }

    /// Ends the operation and returns who to give its completion (a task to resume, or a
    /// readiness watch's handler). Cancels and timers no longer act on it; the slot stays with
    /// its caller until ``release(_:)``.
    mutating func finish(_ id: OperationID, result: Int32, flags: UInt32) -> (waiter: Waiter?, completion: Completion) {
        let i = Int(id.index)
        let waiter: Waiter?
        if let continuation = slots[i].continuation.take() {
            waiter = .task(continuation)
        } else if let handler = slots[i].handler.take() {
            waiter = slots[i].watchFD >= 0 ? .repeating(handler, fd: slots[i].watchFD) : .handler(handler)
            slots[i].watchFD = -1
        } else {
            waiter = nil
        }
        let completion = Completion(result: result, flags: flags, timedOut: slots[i].timedOut)
        slots[i].state = .completed
        pendingCount -= 1
        return (waiter, completion)
    }

    /// Returns a completed slot for reuse, with a new generation so stale cancels and timers
    /// aimed at it are recognised.
    mutating func release(_ id: OperationID) {
        let i = Int(id.index)
        slots[i].state = .free
        slots[i].generation &+= 1
        if slots[i].generation == 0 { slots[i].generation = 1 }
        freeList.append(id.index)
        activeCount -= 1
    }

    /// Every operation handed to the backend and not yet completed.
    var inFlight: [OperationID] {
        (0..<slots.count).compactMap { i in
            slots[i].state == .inFlight ? OperationID(index: UInt32(i), generation: slots[i].generation) : nil
        }
    }

    /// Every sleep not yet ended.
    var sleeping: [OperationID] {
        (0..<slots.count).compactMap { i in
            slots[i].state == .sleeping ? OperationID(index: UInt32(i), generation: slots[i].generation) : nil
        }
    }
}
