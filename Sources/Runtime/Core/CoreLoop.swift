#if canImport(Glibc)
import Glibc
#endif
import CURing
import DequeModule
import Synchronization

/// The event loop of one core: runs jobs, hands operations to the backend, reaps completions,
/// fires timers and parks in the kernel when there is nothing to do. Confined to the core's
/// thread; other threads reach it only through its executor's inbox.
final class CoreLoop {
    let index: Int
    let cpu: Int?
    let backend: any IOBackend
    unowned(unsafe) let executor: CoreExecutor

    // Hot state, touched only on this thread: dynamic exclusivity checks would cost ~30 % of a
    // job hop here (see ../shared/notes), and the thread confinement makes them pointless.
    @exclusivity(unchecked) var jobs = Deque<CoreJob>()
    @exclusivity(unchecked) var table = OperationTable()
    @exclusivity(unchecked) var timers = TimerQueue()
    @exclusivity(unchecked) var statistics = CoreStatistics()
    /// Actions to run at the end of this turn (``Core/runAtEndOfTurn(_:)``), and the list being run.
    @exclusivity(unchecked) var turnEndActions = CoreList<TurnEndEntry>(capacity: 64)
    @exclusivity(unchecked) private var runningTurnEndActions = CoreList<TurnEndEntry>(capacity: 64)
    /// Set once the loop has run its last end-of-turn actions: later ones would never run.
    @exclusivity(unchecked) private(set) var turnEndClosed = false
    @exclusivity(unchecked) private var stopping = false
    /// Readiness watches that completed, with their results, for the loop to call between turns.
    @exclusivity(unchecked) private var readyWatches = CoreList<(any CoreCompletionHandler, Int32)>()
    /// Repeating watches whose poll ended while they go on: armed again between turns (not from
    /// inside the backend's reaping, which a submission may re-enter when the queue is full).
    @exclusivity(unchecked) private var watchesToRearm: [OperationID] = []
    @exclusivity(unchecked) private var runningReadyWatches = CoreList<(any CoreCompletionHandler, Int32)>()
    /// Whether the last busy turn skipped its kernel entry (see ``run()``).
    @exclusivity(unchecked) private var pollSkipped = false
    /// Sockets this core opened (accept, connect) or adopted and has not closed: closed when the
    /// core stops, so a shutdown leaves no descriptor behind.
    var ownedDescriptors = Set<Int32>()
    /// Per-core singletons of the layers above (a buffer pool, a registration cache), by type.
    var locals: [ObjectIdentifier: AnyObject] = [:]
    /// Whether the core is stopping: new operations end at once with `ECANCELED`.
    var isStopping: Bool { stopping }

    init(index: Int, cpu: Int?, backend: any IOBackend, executor: CoreExecutor, settings: CoreLoopSettings) {
        self.index = index
        self.handOffJobsPerTurn = settings.handOffJobsPerTurn
        self.idlePollNanoseconds = settings.idlePollNanoseconds
        self.idleSpinNanoseconds = settings.idlePollNanoseconds
        self.cpu = cpu
        self.backend = backend
        self.executor = executor
        jobs.reserveCapacity(1024)
    }

    /// How many jobs enqueued during a turn may run in that turn
    /// (``Runtime/Configuration/handOffJobsPerTurn``). Most are the other half of a hand-off: a
    /// task resumed by the one running (an RPC reply handed to its caller, a credit returned), or
    /// a task hopping to the core's actor after an await (Swift resumes an actor-isolated
    /// continuation on the task executor, then hops). Left to the next turn, each cost a turn,
    /// and a turn often a kernel entry; the bound keeps tasks that hand work back and forth (or
    /// yield in a loop) from starving the ring.
    let handOffJobsPerTurn: Int

    /// How long an idle core polls its backend and inbox before it parks
    /// (``Runtime/Configuration/idlePollTime``); 0 parks at once.
    let idlePollNanoseconds: UInt64

    /// Drivers' queues polled while idle (``Core/addIdlePoller(_:for:)``), each with its time.
    @exclusivity(unchecked) private var idlePollers: [(poller: any CoreIdlePoller, nanoseconds: UInt64)] = []
    /// How long an idle core polls: the longest of ``idlePollNanoseconds`` and the pollers' times.
    @exclusivity(unchecked) private var idleSpinNanoseconds: UInt64 = 0

    func addIdlePoller(_ poller: any CoreIdlePoller, nanoseconds: UInt64) {
        if let index = idlePollers.firstIndex(where: { $0.poller === poller }) {
            idlePollers[index].nanoseconds = nanoseconds
        } else {
            idlePollers.append((poller, nanoseconds))
        }
        idleSpinNanoseconds = idlePollers.reduce(idlePollNanoseconds) { max($0, $1.nanoseconds) }
    }

    func removeIdlePoller(_ poller: any CoreIdlePoller) {
        idlePollers.removeAll { $0.poller === poller }
        idleSpinNanoseconds = idlePollers.reduce(idlePollNanoseconds) { max($0, $1.nanoseconds) }
    }

    /// Tells every idle poller the core is about to park; whether one found work meanwhile.
    private func idlePollersWillPark() -> Bool { eachIdlePoller { $0.coreWillPark() } }

    /// Polls every idle poller once; whether one found work.
    private func runIdlePollers() -> Bool { eachIdlePoller { $0.pollWhileIdle() } }

    /// Calls `body` with every idle poller; whether any call found work.
    @inline(__always)
    private func eachIdlePoller(_ body: (any CoreIdlePoller) -> Bool) -> Bool {
        var found = false
        var index = 0
        while index < idlePollers.count {  // by index: a poller's work may remove a poller
            if body(idlePollers[index].poller) { found = true }
            index += 1
        }
        return found
    }

    /// ``Deadline/coarseLag`` in nanoseconds; 0 when the coarse clock is not used.
    private let coarseLagNanoseconds = Deadline.coarseLag.map { UInt64($0.nanosecondsClamped) } ?? 0

    // MARK: Operations

    /// Starts a reserved operation; its completion resumes `continuation`.
    func start(_ id: OperationID, _ operation: IOOperation, continuation: UnsafeContinuation<Completion, Never>) {
        table.begin(id, state: .inFlight, continuation: continuation)
        // A stopping core starts nothing new, except a close: the descriptor has left the
        // core's owned set already, so a close not done here would be done by no one.
        if table.isCancelRequested(id) || (stopping && !operation.isClose) {
            complete(token: id.token, result: -ECANCELED, flags: 0)
            return
        }
        backend.submit(operation, token: id.token)
    }

    /// Starts a sleep until `deadline`, or until woken (``wake(_:result:)``) when it is `nil`.
    func startSleep(_ id: OperationID, until deadline: Deadline?, continuation: UnsafeContinuation<Completion, Never>) {
        table.begin(id, state: .sleeping, continuation: continuation)
        if table.isCancelRequested(id) || stopping {
            complete(token: id.token, result: -ECANCELED, flags: 0)
            return
        }
        if let result = table.earlyWake(of: id) {
            complete(token: id.token, result: result, flags: 0)
            return
        }
        if let deadline { timers.schedule(id, at: deadline, action: .wake) }
    }

    /// Starts a readiness watch on `fd`: a one-shot one (``Core/whenReadable(_:_:)``), whose
    /// completion calls `handler` once, or a repeating one (``Core/watchReadable(_:_:)``), whose
    /// every completion calls it until the watch is cancelled or the core stops. Handlers are
    /// called from the loop, between turns.
    @discardableResult
    func startWatch(fd: Int32, _ handler: any CoreReadinessHandler, repeating: Bool) -> OperationID {
        let id = table.reserve()
        table.beginHandled(id, handler: handler, repeatingOn: repeating ? fd : nil)
        armWatch(id, fd: fd, repeating: repeating)
        return id
    }

    private func armWatch(_ id: OperationID, fd: Int32, repeating: Bool) {
        let events = UInt32(POLLIN)
        backend.submit(repeating ? .pollRepeating(fd: fd, events: events) : .poll(fd: fd, events: events), token: id.token)
    }

    /// Starts `operation` with a handler rather than a task (``Core/receive(_:into:flags:deadline:pollFirst:then:)``):
    /// its completion calls `handler` once, from the loop, between turns.
    func start(_ id: OperationID, _ operation: IOOperation, deadline: Deadline?, handler: any CoreCompletionHandler) {
        table.beginHandled(id, handler: handler, repeatingOn: nil)
        if stopping {
            complete(token: id.token, result: -ECANCELED, flags: 0)
            return
        }
        if let deadline { timers.schedule(id, at: deadline, action: .expire) }
        backend.submit(operation, token: id.token)
    }

    /// Arms again the repeating watches whose poll ended, or ends those cancelled meanwhile.
    private func rearmWatches() {
        for id in watchesToRearm {
            guard let watch = table.repeatingWatch(id) else { continue }
            if table.isCancelRequested(id) || stopping {
                complete(token: id.token, result: -ECANCELED, flags: 0)
            } else {
                armWatch(id, fd: watch.fd, repeating: true)
            }
        }
        watchesToRearm.removeAll(keepingCapacity: true)
    }

    /// Ends a sleep early with `result`; returns false if it had already ended.
    @discardableResult
    func wake(_ id: OperationID, result: Int32) -> Bool {
        switch table.state(of: id) {
        case .sleeping?:
            break
        case .reserved?:
            // Woken between reserving and suspending (entering the cancellation handler can
            // suspend): the sleep ends as soon as it begins.
            table.setEarlyWake(id, result: result)
            return true
        default:
            return false
        }
        complete(token: id.token, result: result, flags: 0)
        return true
    }

    /// Cancels an operation or sleep of this core; ignored if it has already ended.
    func cancel(_ id: OperationID) {
        switch table.state(of: id) {
        case .reserved?:
            table.markCancelRequested(id)
        case .inFlight?:
            if !table.isCancelRequested(id) {
                table.markCancelRequested(id)
                backend.cancel(token: id.token)
            }
        case .sleeping?:
            complete(token: id.token, result: -ECANCELED, flags: 0)
        case .completed?, .free?, nil:
            break
        }
    }

    /// Delivers one completion to its operation's continuation.
    func complete(token: UInt64, result: Int32, flags: UInt32) {
        let id = OperationID(token: token)
        switch table.state(of: id) {
        case .inFlight?, .sleeping?, .reserved?: break
        default: return
        }
        if result >= 0, let handler = table.repeatingHandler(of: id) {
            // The watch goes on: its poll stays armed (`F_MORE`), or is armed again between turns.
            if flags & CURING_CQE_F_MORE == 0 { watchesToRearm.append(id) }
            readyWatches.append((consume handler, result))
            return
        }
        let (waiter, completion) = table.finish(id, result: result, flags: flags)
        statistics.operationsCompleted &+= 1
        switch waiter {
        case .task(let continuation)?:
            continuation.resume(returning: completion)
        case .handler(let handler)?, .repeating(let handler, _)?:
            // Called after the backend's reaping (never from inside it), before the next jobs.
            table.release(id)
            readyWatches.append((handler, completion.timedOut ? -ETIMEDOUT : result))
        case nil:
            break
        }
    }

    /// Jobs to run or readiness handlers to call: a core with work does not park (nor keep
    /// polling idle).
    private var hasWork: Bool { !jobs.isEmpty || !readyWatches.isEmpty || !watchesToRearm.isEmpty }

    /// Calls the handlers of the readiness watches that completed; those they start run later.
    private func runReadyWatches() {
        swap(&readyWatches, &runningReadyWatches)
        runningReadyWatches.removeAll { watch in watch.0.coreOperationCompleted(watch.1) }
        // After the handlers: a poll armed before they served would find the old readiness.
        if !watchesToRearm.isEmpty { rearmWatches() }
    }

    private func fireTimers() {
        guard let earliest = timers.earliest, mayHaveCome(earliest) else { return }
        let now = Deadline.now.nanoseconds
        while let entry = timers.popDue(now: now) {
            switch (table.state(of: entry.operation), entry.action) {
            case (.sleeping?, .wake):
                complete(token: entry.operation.token, result: 0, flags: 0)
            case (.sleeping?, .timeout):
                complete(token: entry.operation.token, result: 1, flags: 0)
            case (.reserved?, .timeout):
                table.setEarlyWake(entry.operation, result: 1)
            case (.inFlight?, .expire):
                table.markTimedOut(entry.operation)
                cancel(entry.operation)
            case (.reserved?, .expire):
                table.markTimedOut(entry.operation)
                table.markCancelRequested(entry.operation)
            default:
                break // the operation ended before its deadline
            }
        }
    }

    /// Whether `time` may have come: `false` only when the coarse clock shows it surely has not.
    ///
    /// The earliest timer is most often far off (an idle timeout, a connect deadline, an entry
    /// whose operation has ended), and the coarse clock costs no system call where the precise
    /// one does (an HPET clock source in a VM: a system call and an emulated device read for
    /// every turn of a core with any timer).
    @inline(__always)
    private func mayHaveCome(_ time: UInt64) -> Bool {
        coarseLagNanoseconds == 0 || time <= Deadline.coarseNow.nanoseconds &+ coarseLagNanoseconds
    }

    /// How long a core may park whose earliest timer is at `earliest`: exactly until then when it
    /// is near; when it is far (over twice the coarse clock's lag), until it is near by the coarse
    /// clock. Waking a tick or two early costs one turn, which then reads the precise clock;
    /// parking at least the lag keeps the coarse clock moving between such turns.
    private func parkTimeout(until earliest: UInt64) -> UInt64 {
        if coarseLagNanoseconds > 0 {
            let coarse = Deadline.coarseNow.nanoseconds
            if earliest > coarse &+ 2 &* coarseLagNanoseconds { return earliest - coarse - coarseLagNanoseconds }
        }
        let now = Deadline.now.nanoseconds
        return earliest > now ? earliest - now : 0
    }

    /// How many more timer entries than operations a core may hold before it drops those whose
    /// operation has ended. Dropping costs O(entries) and happens at most once per that many
    /// ended operations, so memory stays within twice the live timers and no more.
    static let endedTimersAllowed = 1024

    private func dropEndedTimers() {
        timers.dropEnded { isLive($0) }
    }

    /// Whether operation `id` has yet to end (a timer entry for it still matters).
    private func isLive(_ id: OperationID) -> Bool {
        switch table.state(of: id) {
        case .reserved?, .inFlight?, .sleeping?: true
        case .completed?, .free?, nil: false
        }
    }

    // MARK: The loop

    private func drainInbox() {
        let (jobs, cancels, stop) = executor.inbox.withLock { inbox in
            let taken = (inbox.jobs, inbox.cancels, inbox.stopRequested)
            inbox.jobs.removeAll(keepingCapacity: true)
            inbox.cancels.removeAll(keepingCapacity: true)
            executor.pending.store(0, ordering: .sequentiallyConsistent)
            return taken
        }
        statistics.remoteJobs &+= jobs.count
        self.jobs.append(contentsOf: jobs)
        for id in cancels { cancel(id) }
        if stop && !stopping { beginStopping() }
    }

    private func beginStopping() {
        stopping = true
        for id in table.inFlight { cancel(id) }
        for id in table.sleeping { complete(token: id.token, result: -ECANCELED, flags: 0) }
    }

    /// Runs the actions registered for the end of this turn; those they register run next turn.
    private func runTurnEndActions() {
        swap(&turnEndActions, &runningTurnEndActions)
        runningTurnEndActions.removeAll { entry in
            let taken = entry  // then consumed: `switch consume entry` on a closure parameter is a compiler error in Swift 6.3
            switch consume taken {
            case .action(let action): action.coreTurnDidEnd()
            case .task(let continuation): continuation.resume()
            }
        }
    }

    // The loop unretained: only its own polls call this, so it is alive. A strong capture would
    // be a cycle; an `unowned` one (even `unowned(unsafe)`) is retained and released around
    // every completion.
    private lazy var completionHandler: (UInt64, Int32, UInt32) -> Void = { [loop = Unmanaged.passUnretained(self)] token, result, flags in
        loop._withUnsafeGuaranteedRef { $0.complete(token: token, result: result, flags: flags) }
    }

    @inline(__always)
    private func run(_ job: CoreJob, _ serial: UnownedSerialExecutor, _ taskExecutor: UnownedTaskExecutor) {
        if job.isolated {
            statistics.isolatedJobsRun &+= 1
            job.job.runSynchronously(isolatedTo: serial, taskExecutor: taskExecutor)
        } else {
            job.job.runSynchronously(on: taskExecutor)
        }
    }

    /// Polls the backend and the inbox for up to ``idlePollNanoseconds`` (or until the earliest
    /// timer), without parking: a completion or a job that arrives meanwhile is taken up without
    /// the cost of a wake-up (a sleeping thread's wake across CPUs is most of a loopback round
    /// trip). The core's `parked` flag stays down, so other threads enqueue without waking it.
    ///
    /// - Returns: whether there is work to do now; `false` when the time ran out with none.
    private func pollWhileIdle(_ handler: (UInt64, Int32, UInt32) -> Void) -> Bool {
        statistics.idlePolls &+= 1
        // The time starts at the first clock read, 32 polls in: work that comes sooner (the
        // usual case when a reply is due) costs no clock read at all.
        var end: UInt64?
        var spins = 0
        while true {
            // The pollers first: what a driver's queue shows is often announced on the ring as
            // well (a completion channel's event), and taken from the queue it costs no event.
            if !idlePollers.isEmpty && runIdlePollers() { break }
            if backend.pollIdle(handler) && hasWork { break }
            if executor.pending.load(ordering: .relaxed) > 0 { break }
            spins &+= 1
            // Reading the clock costs more than a poll of an empty ring: read it now and then.
            if spins & 31 == 0 {
                let now = Deadline.now.nanoseconds
                if end == nil {
                    var limit = now &+ idleSpinNanoseconds
                    if limit < now { limit = .max }
                    if let earliest = timers.earliest, earliest < limit { limit = earliest }
                    end = limit
                }
                // Out of time with no work: go round again only for a timer that is now due, or
                // for work a poller found as it turned its notifications back on.
                if let end, now >= end {
                    if let earliest = timers.earliest, earliest <= now { return true }
                    return !idlePollers.isEmpty && idlePollersWillPark()
                }
            }
            curing_cpu_relax()
        }
        statistics.idlePollsEndedByWork &+= 1
        return true
    }

    /// Runs until asked to stop and every operation has ended.
    func run() {
        let serial = executor.serial.asUnownedSerialExecutor()
        let taskExecutor = executor.asUnownedTaskExecutor()
        let handler = completionHandler
        while true {
            statistics.turns &+= 1
            if executor.pending.load(ordering: .sequentiallyConsistent) > 0 { drainInbox() }
            if !readyWatches.isEmpty || !watchesToRearm.isEmpty { runReadyWatches() }

            // Run the jobs queued now and the jobs they enqueue, up to a bound: then I/O is reaped.
            var budget = jobs.count + handOffJobsPerTurn
            while budget > 0, let job = jobs.popFirst() {
                budget -= 1
                statistics.jobsRun &+= 1
                run(job, serial, taskExecutor)
            }
            // A busy core polls its pollers once a turn: their notifications may be off.
            if !idlePollers.isEmpty { _ = runIdlePollers() }
            // Before any submission or wait: what the jobs sent leaves now, with no extra round trip.
            if !turnEndActions.isEmpty { runTurnEndActions() }

            if !timers.isEmpty { fireTimers() }
            if timers.count > 2 * table.activeCount + Self.endedTimersAllowed { dropEndedTimers() }

            if hasWork || executor.pending.load(ordering: .relaxed) > 0 {
                // Busy: enter the kernel (submit, reap) every other turn. A turn that hands a
                // message to a waiting task then costs no system call: the task's own I/O joins
                // the submission at the park that follows, and a busy core still reaps often.
                if pollSkipped {
                    backend.poll(timeout: nil, handler)
                    pollSkipped = false
                } else {
                    pollSkipped = true
                }
                continue
            }
            pollSkipped = false
            // Stop once the kernel holds nothing of ours. Completed operations whose tasks have
            // not resumed yet do not hold the core: their jobs are queued, and run below.
            if stopping && table.pendingCount == 0 { break }

            // With pollers, even for no time: they must hear of the park (``CoreIdlePoller/coreWillPark()``).
            if (idleSpinNanoseconds > 0 || !idlePollers.isEmpty) && pollWhileIdle(handler) { continue }

            executor.parked.store(true, ordering: .sequentiallyConsistent)
            if executor.pending.load(ordering: .sequentiallyConsistent) > 0 {
                executor.parked.store(false, ordering: .relaxed)
                continue
            }
            // An entry whose operation has ended (a connect's timeout, a receive's idle timeout)
            // would have the park set a kernel timer, and cancel it on waking, for nothing.
            if !timers.isEmpty { timers.dropEndedAtFront { isLive($0) } }
            var timeout = UInt64.max
            if let earliest = timers.earliest { timeout = parkTimeout(until: earliest) }
            statistics.parks &+= 1
            backend.poll(timeout: timeout, handler)
            executor.parked.store(false, ordering: .relaxed)
        }
        executor.inbox.withLock { inbox in
            inbox.closed = true
            // Jobs that slipped in before `closed` still run, so no task is left hanging.
            self.jobs.append(contentsOf: inbox.jobs)
            inbox.jobs.removeAll()
        }
        if !readyWatches.isEmpty { runReadyWatches() }
        while let job = jobs.popFirst() {
            run(job, serial, taskExecutor)
        }
        // Last writes, before the descriptors close; those they schedule run too, a few rounds at most.
        var rounds = 0
        while !turnEndActions.isEmpty && rounds < 8 {
            runTurnEndActions()
            rounds += 1
        }
        turnEndClosed = true  // from here `runAtEndOfTurn` throws `shutDown`: callers act at once
        turnEndActions.removeAll()
        statistics.submissionQueueFull = backend.submissionQueueFullCount
        locals.removeAll()
        for fd in ownedDescriptors { Glibc.close(fd) }
        ownedDescriptors.removeAll()
        backend.close()
        table.deallocate()
    }
}
