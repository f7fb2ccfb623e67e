import NetRuntime
import NetTransport

// The server's per-call state. Top-level rather than nested in the generic `ServerConnection<T>`:
// a nested type is generic too, and every use of one (a dictionary of them, an optional) then
// looks its metadata up at run time, which cost the server about 5 % of its CPU per call.

/// A call running on a server connection.
struct RunningCall {
    var worker: CallWorker?
    var expired = false
    var cancelledByPeer = false
}

/// One call for a worker to run.
struct CallJob {
    var handler: RPCHandler
    var payload: Message
    var context: RPCContext
    var oneWay: Bool
    var start: Deadline?
}

/// A task that runs calls one after another. Workers are reused, so a call costs no task
/// and no allocation; one whose call is cancelled (a cancel frame, a deadline) is cancelled
/// as a Swift task and retires after that call, since a task cannot be un-cancelled.
final class CallWorker {
    var job: CallJob?
    var handle: CoreWakeHandle?
    var task: Task<Void, Never>?
    var retired = false
}

/// When a call's deadline passes, ordered for the sweeper's heap.
struct DeadlineEntry: Comparable {
    var deadline: Deadline
    var callID: UInt64
    static func < (a: DeadlineEntry, b: DeadlineEntry) -> Bool { a.deadline < b.deadline }
}
