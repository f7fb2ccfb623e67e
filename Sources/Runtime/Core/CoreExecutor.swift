#if canImport(Glibc)
import Glibc
#endif
import DequeModule
import Synchronization

/// The executor of one core: the `TaskExecutor` that tasks prefer, so their I/O completions
/// resume on the core, and (through ``serial``) the `SerialExecutor` of the core's actor
/// (``Core``). Both feed one queue on one thread.
///
/// The two roles are two objects because a job must be run the way it was enqueued: a job for
/// the actor with `runSynchronously(isolatedTo:taskExecutor:)`, a job for the task executor with
/// `runSynchronously(on:)`. Run the other way, each costs one to three extra jobs per await
/// (measured here: a ring no-op took 5 jobs instead of 1).
///
/// A job enqueued on the core's own thread goes onto a plain local queue: no lock, no allocation
/// once the queue has grown. A job from any other thread goes through the inbox (one lock) and
/// wakes the core only if it is parked, with a Dekker-style handshake on two atomics so no
/// wake-up is lost.
public final class CoreExecutor: TaskExecutor,
    // The unsafe boundary: `loop` and `thread` are written once before the executor is
    // published and `loop` is then used only on the core's thread; the rest is atomics and a mutex.
    @unchecked Sendable
{
    /// The work other threads hand to the core.
    struct Inbox {
        var jobs = Deque<CoreJob>()
        var cancels: [OperationID] = []
        var stopRequested = false
        /// Set by the core when it has stopped; nothing is accepted afterwards.
        var closed = false
    }

    let inbox = Mutex(Inbox())
    /// Items in the inbox, read without the lock by the core before it parks.
    let pending = Atomic<Int>(0)
    /// Set by the core just before it waits in the kernel.
    let parked = Atomic<Bool>(false)
    /// Jobs that arrived after the core stopped (they cannot run anywhere: reported in logs).
    let droppedJobs = Atomic<Int>(0)

    /// The core's loop; set on the core's thread before the executor is published, with
    /// ``ownedLoop``, and never changed after.
    ///
    /// Not retained here: ``ownedLoop`` keeps it for the executor's life. A strong reference
    /// would be retained and released around each use (an enqueue, a wait), since the compiler
    /// cannot see that it never changes.
    var loop: CoreLoop { unownedLoop!.takeUnretainedValue() }
    /// ``loop`` as a plain pointer, for the paths that use it without retaining it
    /// (``withLoop(_:)``).
    private var unownedLoop: Unmanaged<CoreLoop>?
    /// Keeps ``loop`` alive.
    var ownedLoop: CoreLoop? {
        didSet { unownedLoop = ownedLoop.map { Unmanaged.passUnretained($0) } }
    }

    /// Runs `body` with the loop, which it must not keep, without retaining the loop: a load of a
    /// class reference from a stored property is retained and released around its use, since
    /// the compiler cannot see that the property never changes. For the paths of every message.
    @inline(__always)
    func withLoop<R>(_ body: (CoreLoop) throws -> R) rethrows -> R {
        try unownedLoop!._withUnsafeGuaranteedRef(body)
    }
    /// The core's thread; set before the executor is published.
    var thread = pthread_t()
    var waker = Waker(fd: -1)
    /// The core actor's serial executor.
    public private(set) var serial: CoreSerialExecutor!

    init() {
        serial = CoreSerialExecutor(self)
    }

    /// Whether the caller runs on this core's thread. Asked on every enqueue and operation, and
    /// every other poll of a busy-polling receive: glibc's `pthread_t` is the thread's address,
    /// which `pthread_equal` only compares, so the comparison is made here without that call.
    @inline(__always)
    var isOnCoreThread: Bool { pthread_self() == thread }

    public func enqueue(_ job: consuming ExecutorJob) {
        enqueue(CoreJob(UnownedJob(job), isolated: false))
    }

    @inline(__always)
    func enqueue(_ job: CoreJob) {
        if isOnCoreThread {
            withLoop { $0.jobs.append(job) }
        } else {
            enqueueRemote(.job(job))
        }
    }

    enum RemoteItem {
        case job(CoreJob)
        case cancel(OperationID)
        case stop
    }

    /// Hands an item to the core from another thread; returns false once the core has stopped.
    @discardableResult
    func enqueueRemote(_ item: RemoteItem) -> Bool {
        inbox.withLock { inbox in
            guard !inbox.closed else {
                if case .job = item { droppedJobs.add(1, ordering: .relaxed) }
                return false
            }
            switch item {
            case .job(let job): inbox.jobs.append(job)
            case .cancel(let id): inbox.cancels.append(id)
            case .stop: inbox.stopRequested = true
            }
            pending.add(1, ordering: .sequentiallyConsistent)
            // Under the lock: the core closes the eventfd only after setting `closed` under it.
            if parked.exchange(false, ordering: .sequentiallyConsistent) {
                waker.wake()
            }
            return true
        }
    }

    /// Cancels an operation of this core from any thread (a task's cancellation handler).
    func requestCancel(_ id: OperationID) {
        if isOnCoreThread {
            loop.cancel(id)
        } else {
            enqueueRemote(.cancel(id))
        }
    }

    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }
}

/// A job queued on a core, and how to run it.
struct CoreJob {
    let job: UnownedJob
    /// Enqueued on the core actor's serial executor (else on the task executor).
    let isolated: Bool

    init(_ job: UnownedJob, isolated: Bool) {
        self.job = job
        self.isolated = isolated
    }
}

/// The `SerialExecutor` of a core's actor: the same queue and thread as its ``CoreExecutor``.
public final class CoreSerialExecutor: SerialExecutor, Sendable {
    /// The core's task executor.
    public unowned let core: CoreExecutor

    init(_ core: CoreExecutor) { self.core = core }

    public func enqueue(_ job: consuming ExecutorJob) {
        core.enqueue(CoreJob(UnownedJob(job), isolated: true))
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    public func isSameExclusiveExecutionContext(other: CoreSerialExecutor) -> Bool {
        self === other
    }

    public func checkIsolated() {
        precondition(core.isOnCoreThread, "not on core \(core.ownedLoop?.index ?? -1)'s thread")
    }

    public func isIsolatingCurrentContext() -> Bool? {
        core.isOnCoreThread
    }
}
