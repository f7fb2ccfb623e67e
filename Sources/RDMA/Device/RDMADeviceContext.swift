#if canImport(Glibc)
import Glibc
#endif
import CRDMA
import NetRuntime
import NetTransport

/// One core's resources on one RDMA device, shared by all that core's connections on it: the
/// protection domain, one completion queue with its completion channel (whose descriptor the
/// core's ring watches), and the registered slab.
///
/// Used only on its core's thread.
final class RDMADeviceContext {
    /// The device (owned by librdmacm, which opens every device once per process).
    let verbs: UnsafeMutablePointer<ibv_context>
    let protectionDomain: UnsafeMutablePointer<ibv_pd>
    let completionChannel: UnsafeMutablePointer<ibv_comp_channel>
    let completionQueue: UnsafeMutablePointer<ibv_cq>
    /// Entries the completion queue holds (what the device granted, maybe more than asked).
    let completionCapacity: Int
    // State below is touched only on the core's thread: no dynamic exclusivity checks.
    /// Entries reserved by the connections (send depth + receive depth each).
    @exclusivity(unchecked) private(set) var completionsReserved = 0
    /// Completion-channel events not yet acknowledged: acks take a mutex, so they are batched.
    @exclusivity(unchecked) private var unacknowledgedEvents: UInt32 = 0
    static let acknowledgeBatch: UInt32 = 64
    /// The registered slab of the core on this device.
    let slab: SlabAllocator
    /// Lends the slab's chunks to buffers (no closure per buffer).
    let chunkLender: SlabChunkLender
    /// The slab as a buffer pool (``RDMATransport/allocateBuffer(capacity:)``).
    let bufferPool: RDMABufferPool
    let registrar: Registrar
    /// Registrations of buffers from elsewhere (sent by rendezvous or used one-sided).
    let registrations: RegistrationCache
    /// Work completions polled at once.
    private let completions: UnsafeMutablePointer<ibv_wc>
    static let pollBatch: Int32 = 32
    /// Outstanding RDMA READs a queue pair may have on this device.
    let maximumReadDepth: UInt8

    /// Registers memory with the protection domain: the slab's regions (kept until the end), the
    /// registration cache's entries and one-off buffers (each deregistered when dropped).
    final class Registrar {
        let protectionDomain: UnsafeMutablePointer<ibv_pd>
        var memoryRegions: [(UnsafeMutablePointer<ibv_mr>, UnsafeMutableRawPointer)] = []

        init(protectionDomain: UnsafeMutablePointer<ibv_pd>) {
            self.protectionDomain = protectionDomain
        }

        /// Registers `size` bytes at `base` for local and remote access.
        ///
        /// - Throws: ``TransportError/Code/resourceExhausted``; when the kernel refuses to pin
        ///   the pages, the message names RLIMIT_MEMLOCK, the usual cause.
        func register(_ base: UnsafeMutableRawPointer, size: Int) throws(TransportError) -> UnsafeMutablePointer<ibv_mr> {
            guard let mr = crdma_reg_mr(protectionDomain, base, size, CRDMA_ACCESS_SLAB) else {
                let code = errno
                if code == ENOMEM || code == ENOBUFS || code == EPERM || code == EAGAIN {
                    let limit = crdma_memlock_limit()
                    let allowed = limit == .max ? "unlimited" : "\(limit) bytes"
                    throw TransportError(
                        .resourceExhausted,
                        "registering \(size) bytes failed: locked memory is limited by RLIMIT_MEMLOCK (ulimit -l; now \(allowed)); raise it, or give the process CAP_IPC_LOCK",
                        underlying: IOError(code: code, operation: .init("ibv_reg_mr")))
                }
                throw verbsError(.resourceExhausted, "ibv_reg_mr", errno: code)
            }
            return mr
        }

        func makeRegion(size: Int) throws -> SlabAllocator.Region {
            let base = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
            let mr: UnsafeMutablePointer<ibv_mr>
            do {
                mr = try register(base, size: size)
            } catch {
                base.deallocate()
                throw error
            }
            memoryRegions.append((mr, base))
            return SlabAllocator.Region(base: base, size: size, localKey: mr.pointee.lkey, remoteKey: mr.pointee.rkey)
        }

        func deregisterAll() {
            for (mr, base) in memoryRegions {
                ibv_dereg_mr(mr)
                base.deallocate()
            }
            memoryRegions.removeAll()
        }
    }

    init(verbs: UnsafeMutablePointer<ibv_context>, configuration: RDMATransport.Configuration) throws {
        self.verbs = verbs
        var attributes = ibv_device_attr()
        guard ibv_query_device(verbs, &attributes) == 0 else { throw verbsError(.unavailable, "ibv_query_device") }
        maximumReadDepth = UInt8(clamping: min(attributes.max_qp_rd_atom, attributes.max_qp_init_rd_atom))
        guard let pd = ibv_alloc_pd(verbs) else { throw verbsError(.resourceExhausted, "ibv_alloc_pd") }
        guard let channel = ibv_create_comp_channel(verbs) else {
            ibv_dealloc_pd(pd)
            throw verbsError(.resourceExhausted, "ibv_create_comp_channel")
        }
        guard crdma_set_nonblocking(channel.pointee.fd) == 0,
              let cq = ibv_create_cq(verbs, Int32(min(configuration.completionQueueSize, Int(attributes.max_cqe))), nil, channel, 0)
        else {
            let error = verbsError(.resourceExhausted, "ibv_create_cq")
            ibv_destroy_comp_channel(channel)
            ibv_dealloc_pd(pd)
            throw error
        }
        protectionDomain = pd
        completionChannel = channel
        completionQueue = cq
        completionCapacity = Int(cq.pointee.cqe)
        registrar = Registrar(protectionDomain: pd)
        slab = SlabAllocator(configuration: configuration.slab) { [registrar] size in try registrar.makeRegion(size: size) }
        chunkLender = SlabChunkLender(slab: slab)
        bufferPool = RDMABufferPool(slab: slab, lender: chunkLender, pooledBytesPerClass: configuration.pooledBytesPerClass)
        registrations = RegistrationCache(
            limits: configuration.registrationCache,
            register: { [registrar] base, size in
                let mr = try registrar.register(base, size: size)
                return .init(keys: .init(localKey: mr.pointee.lkey, remoteKey: mr.pointee.rkey), handle: UnsafeMutableRawPointer(mr))
            },
            deregister: { registration in
                if let mr = registration.handle { ibv_dereg_mr(mr.assumingMemoryBound(to: ibv_mr.self)) }
            })
        completions = .allocate(capacity: Int(Self.pollBatch))
        // Armed from the start: the first completion raises an event.
        _ = crdma_req_notify_cq(cq, 0)
    }

    deinit {
        if unacknowledgedEvents > 0 { ibv_ack_cq_events(completionQueue, unacknowledgedEvents) }
        ibv_destroy_cq(completionQueue)
        ibv_destroy_comp_channel(completionChannel)
        registrations.removeAll()
        registrar.deregisterAll()
        ibv_dealloc_pd(protectionDomain)
        completions.deallocate()
    }

    /// The completion channel's descriptor, watched by the core's ring.
    var descriptor: Int32 { completionChannel.pointee.fd }

    /// Reserves `count` completion-queue entries for a connection; false when they do not fit
    /// (a completion-queue overrun would break every connection of the core).
    func reserveCompletions(_ count: Int) -> Bool {
        guard completionsReserved + count <= completionCapacity else { return false }
        completionsReserved += count
        return true
    }

    /// Gives reserved entries back.
    func releaseCompletions(_ count: Int) {
        completionsReserved -= count
    }

    /// Takes the channel's pending event (acknowledged in batches), re-arms the queue, then
    /// polls until it is empty, handing each completion to `router` (``RDMACoreContext/route(_:)``).
    /// Arming before the last poll means a completion that lands after it raises a new event: none is missed.
    ///
    /// On a readiness the core first only polls (``pollUntilEmpty(_:)``) and calls this at the
    /// end of the turn, once the tasks those completions woke have run: the read of the event
    /// and the re-arm (two system calls) then come after their replies were posted, not before.
    func serviceCompletions(_ router: RDMACoreContext, arm: Bool = true) {
        var cq: UnsafeMutablePointer<ibv_cq>?
        var context: UnsafeMutableRawPointer?
        // One event per readiness: another queued event keeps the descriptor readable, so the
        // ring reports it at once, and no read is wasted on EAGAIN (a system call, which the
        // emulated guest makes expensive).
        if ibv_get_cq_event(completionChannel, &cq, &context) == 0 {
            unacknowledgedEvents += 1
        }
        if unacknowledgedEvents >= Self.acknowledgeBatch {
            ibv_ack_cq_events(completionQueue, unacknowledgedEvents)
            unacknowledgedEvents = 0
        }
        if arm {
            _ = crdma_req_notify_cq(completionQueue, 0)
        } else {
            unarmed = true
        }
        pollUntilEmpty(router)
    }

    /// Whether the queue was left without notifications (its core polls it: ``armIfNeeded(_:)``).
    @exclusivity(unchecked) private(set) var unarmed = false

    /// Turns the queue's notifications back on if they were left off, then polls it (a
    /// completion that landed before the arm raises no event). Returns whether it found any.
    func armIfNeeded(_ router: RDMACoreContext) -> Bool {
        guard unarmed else { return false }
        unarmed = false
        _ = crdma_req_notify_cq(completionQueue, 0)
        return pollUntilEmpty(router)
    }

    /// Polls until the queue is empty (without touching the channel). A poll that returns fewer
    /// completions than it asked for found the queue empty: no second poll to confirm it, which
    /// was on every message's path (a lock and an unlock of the queue in rxe).
    /// Returns whether it found any.
    @discardableResult
    func pollUntilEmpty(_ router: RDMACoreContext) -> Bool {
        var found = false
        while true {
            let count = crdma_poll_cq(completionQueue, Self.pollBatch, completions)
            guard count > 0 else { return found }
            found = true
            for i in 0..<Int(count) { router.route(WorkCompletion(completions + i)) }
            guard count == Self.pollBatch else { return found }
        }
    }
}

/// The fields of a work completion that are used, copied out of the device's array. On error
/// only the id, status and vendor error are valid (never the opcode or length).
struct WorkCompletion {
    let id: WorkRequestID
    let status: ibv_wc_status
    let vendorError: UInt32
    let byteLength: Int
    /// The immediate data in host order, if the completion carries any.
    let immediate: UInt32?

    init(_ wc: UnsafeMutablePointer<ibv_wc>) {
        id = WorkRequestID(raw: wc.pointee.wr_id)
        status = wc.pointee.status
        vendorError = wc.pointee.vendor_err
        let ok = wc.pointee.status == IBV_WC_SUCCESS
        byteLength = ok ? Int(wc.pointee.byte_len) : 0
        immediate = ok && wc.pointee.wc_flags & CRDMA_WC_WITH_IMM != 0 ? crdma_wc_immediate(wc) : nil
    }

    var succeeded: Bool { status == IBV_WC_SUCCESS }
    var isFlush: Bool { status == IBV_WC_WR_FLUSH_ERR }
    var statusText: String { String(cString: ibv_wc_status_str(status)) }
}
