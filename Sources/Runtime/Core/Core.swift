#if canImport(Glibc)
import Glibc
#endif

/// One core of the runtime: an OS thread pinned to one CPU, its own io_uring ring (or epoll
/// instance), and this actor, whose executor is the core's.
///
/// `Core` is the isolation domain of everything that lives on the core: connections, buffers and
/// pools are non-Sendable objects created in a function isolated to a `Core` and, thanks to
/// Swift 6's region checks, the compiler keeps them there. Code reaches a core through
/// ``Runtime/run(on:_:)``, which also gives the task the core's executor preference so that
/// every completion resumes on the core without a hop through the global pool.
///
/// ```swift
/// try await runtime.run(on: 0) { core in
///     let (fd, _) = try await core.accept(listener)
///     let n = try await core.recv(fd, into: buffer)
/// }
/// ```
public actor Core {
    /// The core's position in ``Runtime/cores``.
    public nonisolated let index: Int
    /// The CPU the core's thread is pinned to, or `nil` when pinning is off.
    public nonisolated let cpu: Int?
    /// The core's executor; prefer it (`withTaskExecutorPreference`) to keep a task on the core.
    public nonisolated let executor: CoreExecutor
    /// The name of the I/O backend the core uses (`io_uring` or `epoll`).
    public nonisolated let backendName: String

    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        executor.serial.asUnownedSerialExecutor()
    }

    init(index: Int, cpu: Int?, executor: CoreExecutor) {
        self.index = index
        self.cpu = cpu
        self.executor = executor
        self.backendName = executor.loop.backend.name
    }

    /// The loop, used only while isolated to the core (so on its thread).
    nonisolated var loop: CoreLoop { executor.loop }

    /// The core's counters.
    public var statistics: CoreStatistics {
        var statistics = loop.statistics
        statistics.submissionQueueFull = loop.backend.submissionQueueFullCount
        statistics.pendingOperations = loop.table.activeCount
        statistics.timerEntries = loop.timers.count
        return statistics
    }

    /// The io_uring features probed on this core's ring, or `nil` under the epoll backend.
    public var uringFeatures: URingFeatures? {
        (loop.backend as? URingBackend)?.features
    }

    /// The core's own instance of `T`, created by `make` on first use: per-core state of the layers
    /// above the runtime (a buffer pool, a connection pool) without a lock or a global. Dropped
    /// when the core stops.
    ///
    /// - Throws: ``RuntimeError/notOnCore(_:)`` off the core's thread.
    public nonisolated func local<T: AnyObject>(_ type: T.Type, _ make: () throws -> T) throws -> T {
        guard executor.isOnCoreThread else {
            throw RuntimeError.notOnCore("core-local \(T.self) used off core \(index)'s thread")
        }
        let key = ObjectIdentifier(type)
        if let existing = loop.locals[key] {
            return unsafeDowncast(existing, to: T.self)
        }
        let made = try make()
        loop.locals[key] = made
        return made
    }

    /// Whether the caller runs on this core's thread.
    public nonisolated var isCurrent: Bool { executor.isOnCoreThread }

    /// Whether jobs are queued to run on this core after the current one, in this turn: false
    /// means that once the running task suspends, the turn ends (its end-of-turn actions run and
    /// the core submits I/O or parks). True off the core's thread, where it cannot be known.
    public nonisolated var hasQueuedJobs: Bool {
        guard executor.isOnCoreThread else { return true }
        return !executor.loop.jobs.isEmpty
    }

    /// The executor of the core whose thread is calling, if any: a task started with it as its
    /// preference runs on this core.
    public nonisolated static var currentExecutor: CoreExecutor? { CoreThread.current }

    /// The kernel thread id of the calling thread (for checks that code stays on its core).
    public nonisolated static var currentThreadID: Int32 { curingThreadID() }

    /// The CPU the calling thread is running on now.
    public nonisolated static var currentCPU: Int { Int(curingCurrentCPU()) }
}
