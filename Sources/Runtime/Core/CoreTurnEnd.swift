/// Work a core runs at the end of its turn: once the jobs that were ready when the turn began
/// have run, and before the core submits I/O and waits for completions.
///
/// A connection uses it to write, in one system call, everything its tasks sent during the turn:
/// the write costs no task, no job and no extra ring round trip, and frames sent by several
/// tasks (or by one task between two suspensions) still leave together.
public protocol CoreTurnEndAction: AnyObject {
    /// Called once per ``Core/runAtEndOfTurn(_:)``, on the core's thread. It may send, enqueue
    /// jobs or schedule itself again (it then runs at the end of the next turn).
    func coreTurnDidEnd()
}

extension Core {
    /// Runs `action` at the end of the core's current turn (see ``CoreTurnEndAction``). The core
    /// holds `action` until then. Registering an action twice runs it twice.
    ///
    /// `action` is consumed: the caller's reference moves into the core's list, which costs no
    /// retain of its own.
    ///
    /// - Throws: ``RuntimeError/notOnCore(_:)`` off the core's thread;
    ///   ``RuntimeError/shutDown(_:)`` once the core's loop has ended (its last end-of-turn
    ///   actions have run, and objects it held are going away): the caller then acts at once.
    public nonisolated func runAtEndOfTurn(_ action: consuming any CoreTurnEndAction) throws(RuntimeError) {
        guard executor.isOnCoreThread else {
            throw RuntimeError.notOnCore("Core.runAtEndOfTurn off core \(index)'s thread")
        }
        guard !executor.loop.turnEndClosed else {
            throw RuntimeError.shutDown("core \(index) has stopped: no turn ends any more")
        }
        // Moved into the list through an optional: a closure cannot consume what it captures,
        // and building the entry inside it would copy (retain) the action.
        var entry: TurnEndEntry? = .action(action)
        executor.withLoop { $0.turnEndActions.append(entry.take()!) }
    }

    /// Suspends the calling task until the end of the core's current turn: the jobs queued now
    /// (and those they enqueue) run first, and so do the end-of-turn actions registered before
    /// the task resumes, such as a connection's write of what those jobs sent.
    ///
    /// A task that has just handed work to others (a reader task that resumed the calls it
    /// answered) lets them run, and their messages leave, before it goes on to its own
    /// bookkeeping (setting up its next receive): that bookkeeping is then off the round trip's
    /// critical path. It costs the task one job; no allocation.
    ///
    /// - Throws: ``RuntimeError/notOnCore(_:)`` off the core's thread; ``RuntimeError/shutDown(_:)``
    ///   once the core's loop has ended.
    public nonisolated func yieldUntilTurnEnd() async throws(RuntimeError) {
        guard executor.isOnCoreThread else {
            throw RuntimeError.notOnCore("Core.yieldUntilTurnEnd off core \(index)'s thread")
        }
        let loop: CoreLoop = executor.loop
        guard !loop.turnEndClosed else { throw RuntimeError.shutDown("core \(index) has stopped: no turn ends any more") }
        await withCoreContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            loop.turnEndActions.append(.task(continuation))
        }
    }
}

/// One entry of a core's end-of-turn list: an action to call, or a task to resume.
enum TurnEndEntry {
    case action(any CoreTurnEndAction)
    case task(UnsafeContinuation<Void, Never>)
}
