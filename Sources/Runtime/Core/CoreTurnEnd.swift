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
    /// - Throws: ``RuntimeError/notOnCore(_:)`` off the core's thread.
    public nonisolated func runAtEndOfTurn(_ action: any CoreTurnEndAction) throws(RuntimeError) {
        guard executor.isOnCoreThread else {
            throw RuntimeError.notOnCore("Core.runAtEndOfTurn off core \(index)'s thread")
        }
        executor.loop.turnEndActions.append(action)
    }
}
