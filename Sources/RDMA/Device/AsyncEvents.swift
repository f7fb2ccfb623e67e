#if canImport(Glibc)
import Glibc
#endif
import CRDMA
import NetRuntime
import NetTransport
import Synchronization

/// The device's asynchronous events (`ibv_get_async_event`): a queue pair gone to the error state
/// (`IBV_EVENT_QP_FATAL`, `QP_REQ_ERR`, `QP_ACCESS_ERR`) or the whole device failing
/// (`IBV_EVENT_DEVICE_FATAL`). They are per device, not per core, so one core reads them (the
/// first to open the device, through its ring) and each is sent to the core that owns the queue
/// pair it names; a device failure goes to every core using the device. The connection then fails
/// with a transport error: pending sends and receives throw it, the transport closes.
enum AsyncEvents {
    /// Where a queue pair lives.
    struct Owner: Sendable {
        let core: Core
        let connection: UInt32
    }

    private struct State: Sendable {
        /// Queue pairs by number (unique per device; devices are few, so keyed by both).
        var owners: [Key: Owner] = [:]
        /// Cores using each device, with how many connections each has on it.
        var cores: [UInt: [Int: Core]] = [:]
        /// Devices whose events a core reads.
        var watched: Set<UInt> = []
    }

    struct Key: Hashable, Sendable {
        let device: UInt
        let queuePair: UInt32
    }

    private static let state = Mutex(State())

    /// Records that `core` uses `device`; returns true when no core reads its events yet (the
    /// caller then starts reading them).
    static func attach(device: UInt, core: Core) -> Bool {
        state.withLock { state in
            state.cores[device, default: [:]][core.index] = core
            return state.watched.insert(device).inserted
        }
    }

    /// The core reading `device`'s events stopped: another may take over.
    static func unwatch(device: UInt) {
        _ = state.withLock { $0.watched.remove(device) }
    }

    /// Routes events of queue pair `queuePair` of `device` to `connection` on `core`.
    static func register(device: UInt, queuePair: UInt32, core: Core, connection: UInt32) {
        state.withLock { $0.owners[Key(device: device, queuePair: queuePair)] = Owner(core: core, connection: connection) }
    }

    /// Stops routing events of the queue pair (it is destroyed).
    static func unregister(device: UInt, queuePair: UInt32) {
        _ = state.withLock { $0.owners.removeValue(forKey: Key(device: device, queuePair: queuePair)) }
    }

    /// Reads every pending event of `verbs` (its descriptor is non-blocking) and dispatches each.
    static func drain(_ verbs: UnsafeMutablePointer<ibv_context>) {
        var type: Int32 = 0
        var queuePair: UInt32 = 0
        while crdma_get_async_event(verbs, &type, &queuePair) == 0 {
            dispatch(device: UInt(bitPattern: verbs), type: ibv_event_type(UInt32(type)), queuePair: queuePair)
        }
    }

    /// Sends one event to the cores it concerns (also the entry point of tests, which cannot make
    /// a soft-RoCE device fail on demand).
    static func dispatch(device: UInt, type: ibv_event_type, queuePair: UInt32) {
        let name = String(cString: ibv_event_type_str(type))
        switch type {
        case IBV_EVENT_QP_FATAL, IBV_EVENT_QP_REQ_ERR, IBV_EVENT_QP_ACCESS_ERR, IBV_EVENT_PATH_MIG_ERR:
            guard let owner = state.withLock({ $0.owners[Key(device: device, queuePair: queuePair)] }) else { return }
            let error = TransportError(.connectionReset, "the queue pair failed (\(name))")
            onCore(owner.core) { context in context.fail(connection: owner.connection, error) }
        case IBV_EVENT_DEVICE_FATAL:
            let cores = state.withLock { Array(($0.cores[device] ?? [:]).values) }
            let error = TransportError(.connectionReset, "the RDMA device failed (\(name))")
            for core in cores {
                onCore(core) { context in context.failAll(onDevice: device, error) }
            }
        default:
            break // informational (port state, path migration, last WQE): nothing to do
        }
    }

    /// Runs `body` on `core` with its RDMA context, if it still has one.
    private static func onCore(_ core: Core, _ body: @escaping @Sendable (RDMACoreContext) -> Void) {
        // The task prefers the core's executor, so it runs on the core's thread, where the
        // context lives.
        Task(executorPreference: core.executor) {
            guard let context = try? core.local(RDMACoreContext.self, { throw CancellationError() }) else { return }
            body(context)
        }
    }
}
