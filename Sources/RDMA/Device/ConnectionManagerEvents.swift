#if canImport(Glibc)
import Glibc
#endif
import CRDMA
import DequeModule
import NetRuntime

/// One rdma_cm event, copied out of librdmacm's storage so the event can be acknowledged at once
/// (`rdma_destroy_id` waits until every event of its id has been acknowledged).
struct CMEvent {
    let type: rdma_cm_event_type
    let status: Int32
    let id: UnsafeMutablePointer<rdma_cm_id>
    let listenID: UnsafeMutablePointer<rdma_cm_id>?
    let privateData: [UInt8]

    init(_ event: UnsafeMutablePointer<rdma_cm_event>) {
        type = event.pointee.event
        status = event.pointee.status
        id = event.pointee.id
        listenID = event.pointee.listen_id
        var length: UInt8 = 0
        if let data = crdma_event_private_data(event, &length), length > 0 {
            privateData = Array(UnsafeRawBufferPointer(start: data, count: Int(length)))
        } else {
            privateData = []
        }
    }

    /// The event's name, for messages.
    var name: String { String(cString: rdma_event_str(type)) }
}

/// The events of one connection-manager id: queued for a task that waits for them (address
/// resolved, connect request, established), or handed to a handler once the connection is up.
final class CMEventQueue {
    private var events = Deque<CMEvent>()
    private let waiters: CoreWaitQueue
    /// Set once a connection is established: later events (disconnected, device removal) go
    /// straight to it.
    var handler: ((CMEvent) -> Void)?
    /// Set when the id's owner is gone: waiters throw.
    private(set) var closed = false

    init(core: Core) {
        waiters = CoreWaitQueue(core: core)
    }

    func deliver(_ event: CMEvent) {
        if let handler {
            handler(event)
        } else {
            events.append(event)
            waiters.signalAll()
        }
    }

    /// Events queued and not yet taken.
    func drain() -> [CMEvent] {
        defer { events.removeAll() }
        return Array(events)
    }

    /// The next event; throws `IOError` `ETIMEDOUT` after `deadline`, or `ECANCELED` once closed.
    func next(deadline: Deadline?) async throws -> CMEvent {
        while true {
            if let event = events.popFirst() { return event }
            if closed { throw IOError(code: ECANCELED, operation: .init("rdma_get_cm_event")) }
            try await waiters.wait(deadline: deadline)
        }
    }

    /// Wakes waiters for good.
    func close() {
        closed = true
        waiters.signalAll()
    }
}

extension RDMACoreContext {
    /// Reads every pending connection-manager event without blocking and routes each to the
    /// queue of its id (connect requests to their listener's).
    func serviceConnectionManager() {
        var raw: UnsafeMutablePointer<rdma_cm_event>?
        while rdma_get_cm_event(eventChannel, &raw) == 0, let event = raw {
            let copy = CMEvent(event)
            rdma_ack_cm_event(event)
            dispatch(copy)
        }
    }

    private func dispatch(_ event: CMEvent) {
        let isRequest = event.type == RDMA_CM_EVENT_CONNECT_REQUEST
        let key = UInt(bitPattern: isRequest ? event.listenID : event.id)
        if let queue = queues[key] {
            queue.deliver(event)
        } else if isRequest {
            // No listener any more: refuse, and free the id the request came with.
            rdma_reject(event.id, nil, 0)
            rdma_destroy_id(event.id)
        }
    }
}
