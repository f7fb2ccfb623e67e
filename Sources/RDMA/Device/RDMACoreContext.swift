#if canImport(Glibc)
import Glibc
#endif
import CRDMA
import NetRuntime
import NetTransport

/// The RDMA state of one core: one connection-manager event channel for all its ids, one
/// ``RDMADeviceContext`` per device, and the connections, by number, that completions are
/// routed to. Made on first use by a dialer or listener on the core; lives until the core stops.
///
/// Two kinds of descriptor are watched by the core's ring, each by one long-lived task of the
/// core (not one per connection): the event channel and each device's completion channel. Both
/// are non-blocking; no call here ever blocks the core's thread.
final class RDMACoreContext: CoreTurnEndAction, CoreIdlePoller {
    let core: Core
    let eventChannel: UnsafeMutablePointer<rdma_event_channel>
    /// The configuration of the first connection on the core (completion-queue size, slab).
    let configuration: RDMATransport.Configuration
    // State below is confined to the core's thread (the context is not Sendable): no dynamic
    // exclusivity checks.
    /// The devices in use, by the address of their verbs context: a short list (a machine has a
    /// device or two), searched without hashing on every completion-channel event.
    @exclusivity(unchecked) private var devices: [(key: UInt, device: RDMADeviceContext)] = []
    /// The same devices, unretained, for the idle poll (run many times a round trip while a core
    /// busy-polls): `devices` holds them.
    @exclusivity(unchecked) private var polled: [Unmanaged<RDMADeviceContext>] = []
    /// Connection-manager ids with someone listening for their events.
    @exclusivity(unchecked) var queues: [UInt: CMEventQueue] = [:]
    /// Confined to the core's thread: no dynamic exclusivity checks on a lookup per completion.
    @exclusivity(unchecked) private var connections = ConnectionTable()
    /// Connections with receive buffers released and not yet posted again, posted at the next
    /// poll of the completion queue or at the end of the turn (``RDMATransport/released(slot:)``).
    @exclusivity(unchecked) private var repostsDue = CoreList<RDMATransport>()
    /// Connections with messages (or their end) for a receive handler, handed over after the
    /// poll that found them, or at the end of the turn (``RDMATransport/startReceiving(_:)``).
    @exclusivity(unchecked) private var deliveriesDue = CoreList<RDMATransport>()
    /// Pumps whose full service waits for the end of this turn (``Pump``), run before the reposts.
    /// Not retained: ``pumps`` holds every pump for the context's life.
    @exclusivity(unchecked) private var servicesDue = CoreList<Unmanaged<Pump>>()
    /// The services being run; a pump that asks meanwhile goes to ``servicesDue`` (next turn).
    @exclusivity(unchecked) private var servicesRunning = CoreList<Unmanaged<Pump>>()
    /// Whether the context's end-of-turn action is registered for this turn: one registration
    /// serves both lists.
    @exclusivity(unchecked) private var turnEndScheduled = false
    /// The pumps serving this context's descriptors, told when the context goes.
    private var pumps: [Pump] = []
    /// Receive handlers of busy-polling connections: while there are any, the core polls the
    /// completion queues while idle (``pollWhileIdle()``).
    @exclusivity(unchecked) private(set) var idlePollingHandlers = 0
    /// How long the core polls for them: the longest `busyPolling` among them.
    @exclusivity(unchecked) private var idlePollingTime: Duration = .zero
    /// Whether the completions being handled were found by an idle poll (for the statistics).
    @exclusivity(unchecked) private(set) var inIdlePoll = false

    /// The context of `core`, made on first use.
    ///
    /// - Throws: ``TransportError`` `.unavailable` when the machine has no RDMA device.
    static func on(_ core: Core, configuration: RDMATransport.Configuration) throws -> RDMACoreContext {
        try core.local(RDMACoreContext.self) { try RDMACoreContext(core: core, configuration: configuration) }
    }

    private init(core: Core, configuration: RDMATransport.Configuration) throws {
        try DeviceAvailability.check()
        guard let channel = rdma_create_event_channel() else {
            throw verbsError(.unavailable, "rdma_create_event_channel")
        }
        guard crdma_set_nonblocking(channel.pointee.fd) == 0 else {
            let error = verbsError(.unavailable, "fcntl(O_NONBLOCK) on the rdma_cm channel")
            rdma_destroy_event_channel(channel)
            throw error
        }
        self.core = core
        self.eventChannel = channel
        self.configuration = configuration
        startPump(.connectionManager, descriptor: channel.pointee.fd)
    }

    deinit {
        for pump in pumps { pump.context = nil }
        polled.removeAll()
        devices.removeAll()
        rdma_destroy_event_channel(eventChannel)
    }

    /// The context of the device `verbs` (an id's device, known once its address is bound or
    /// resolved), made on first use.
    func device(for verbs: UnsafeMutablePointer<ibv_context>?) throws -> RDMADeviceContext {
        guard let verbs else {
            throw TransportError(.unavailable, "the address is not on an RDMA device")
        }
        let key = UInt(bitPattern: verbs)
        if let device = device(key) { return device }
        let device = try RDMADeviceContext(verbs: verbs, configuration: configuration)
        devices.append((key, device))
        polled.append(.passUnretained(device))
        startPump(.device(key), descriptor: device.descriptor)
        if AsyncEvents.attach(device: key, core: core) {
            // The first core on the device reads its asynchronous events for the process.
            if crdma_set_nonblocking(verbs.pointee.async_fd) == 0 {
                startPump(.asyncEvents(key), descriptor: verbs.pointee.async_fd)
            } else {
                AsyncEvents.unwatch(device: key)
            }
        }
        return device
    }

    /// The device context with key `key` (its verbs context's address), if in use.
    private func device(_ key: UInt) -> RDMADeviceContext? {
        for entry in devices where entry.key == key { return entry.device }
        return nil
    }

    // MARK: Connection-manager ids

    /// Starts routing the events of `id` to a new queue.
    func register(_ id: UnsafeMutablePointer<rdma_cm_id>) -> CMEventQueue {
        let queue = CMEventQueue(core: core)
        queues[UInt(bitPattern: id)] = queue
        return queue
    }

    /// Stops routing the events of `id` (before it is destroyed).
    func unregister(_ id: UnsafeMutablePointer<rdma_cm_id>) {
        queues.removeValue(forKey: UInt(bitPattern: id))?.close()
    }

    // MARK: Connections

    /// A number for a new connection, to which its completions are routed from now on. The
    /// transport must unregister before it is freed (the table does not keep it alive).
    ///
    /// - Throws: ``TransportError`` `.resourceExhausted` when the core has
    ///   ``ConnectionTable/capacity`` connections already.
    func register(_ transport: RDMATransport) throws(TransportError) -> UInt32 {
        guard let number = connections.insert(transport) else {
            throw TransportError(.resourceExhausted, "\(ConnectionTable.capacity) RDMA connections on one core")
        }
        return number
    }

    /// Stops routing completions to connection `number` (its queue pair is gone).
    func unregister(connection number: UInt32) {
        connections.remove(number)
    }

    /// Posts `transport`'s released receive buffers at the next poll of the completion queue or
    /// at the end of this turn, whichever comes first.
    func repostLater(_ transport: RDMATransport) {
        repostsDue.append(transport)
        scheduleTurnEnd()
    }

    /// Hands `transport`'s ready messages (or its end) to its receive handler after the poll
    /// under way, or at the end of this turn: never from inside a completion's handling, where
    /// the handler's own sends would post while the send queue's retired work is being released.
    func deliverLater(_ transport: RDMATransport) {
        deliveriesDue.append(transport)
        scheduleTurnEnd()
    }

    /// Hands the due connections' messages to their handlers: before the due reposts, so that a
    /// reply's doorbell comes before the repost of the buffer its request arrived in.
    func deliverDue() {
        guard !deliveriesDue.isEmpty else { return }
        var index = 0
        while index < deliveriesDue.count {  // by index: a handler's send may end a connection, which adds it
            deliveriesDue[index].deliverReady()
            index += 1
        }
        deliveriesDue.removeAll()
    }

    /// Runs `pump`'s full service at the end of this turn, before the due reposts.
    fileprivate func serveAtTurnEnd(_ pump: Pump) {
        servicesDue.append(Unmanaged.passUnretained(pump))
        scheduleTurnEnd()
    }

    private func scheduleTurnEnd() {
        guard !turnEndScheduled else { return }
        do {
            try core.runAtEndOfTurn(self)
            turnEndScheduled = true
        } catch {
            // The core's loop has ended (no turn ends any more): the work is done now.
            assert(error.isShutDown, "an RDMA context is used only on its core: \(error)")
            coreTurnDidEnd()
        }
    }

    /// After a poll: the messages it found go to their handlers, then the receive buffers
    /// released meanwhile are posted again (after the replies' doorbells).
    private func handOverPolled() {
        deliverDue()
        postDueReceives()
    }

    /// Posts the receive buffers released since the last call again.
    func postDueReceives() {
        guard !repostsDue.isEmpty else { return }
        var index = 0
        while index < repostsDue.count {  // by index: a post may add a connection
            repostsDue[index].postReleasedReceives()
            index += 1
        }
        repostsDue.removeAll()
    }

    /// The end of a turn in which receive buffers were released (``repostLater(_:)``) or a pump
    /// asked for its service (``serveAtTurnEnd(_:)``): the services first (a device's posts the
    /// due receives after its poll), then what reposts are left.
    func coreTurnDidEnd() {
        turnEndScheduled = false
        swap(&servicesDue, &servicesRunning)
        servicesRunning.removeAll { $0._withUnsafeGuaranteedRef { $0.serveNow() } }
        handOverPolled()
    }

    /// Fails connection `number` (its queue pair had a fatal asynchronous event).
    func fail(connection number: UInt32, _ error: TransportError) {
        guard let transport = connections[number] else { return }
        // Completions already in the queue come first (a message that arrived is delivered).
        drainCompletions(of: transport.device)
        transport.fail(error)
    }

    /// Fails every connection on the device `key` (it had a fatal error).
    func failAll(onDevice key: UInt, _ error: TransportError) {
        for transport in connections.all {
            guard UInt(bitPattern: transport.device.verbs) == key else { continue }
            transport.fail(error)
        }
    }

    // MARK: Idle polling

    /// A busy-polling connection hands its messages to a receive handler: the core polls the
    /// completion queues while idle, for at least `duration` (the longest any such connection
    /// asked for) before it parks.
    func startIdlePolling(for duration: Duration) throws(TransportError) {
        let longest = idlePollingHandlers == 0 ? duration : max(idlePollingTime, duration)
        do {
            try core.addIdlePoller(self, for: longest)
        } catch {
            throw TransportError(.shutDown, "busy polling for a receive handler: \(error.message)")
        }
        idlePollingTime = longest
        idlePollingHandlers += 1
    }

    /// One such handler has ended; the last stops the idle polling (and arms the queues).
    func stopIdlePolling() {
        idlePollingHandlers -= 1
        guard idlePollingHandlers == 0 else { return }
        core.removeIdlePoller(self)
        _ = armQueues()
    }

    /// The core is about to park: the queues left unarmed are armed again, and what landed
    /// before is handed over (``CoreIdlePoller``).
    func coreWillPark() -> Bool { armQueues() }

    /// Arms the queues left without notifications and hands over what they held; whether they
    /// held anything.
    private func armQueues() -> Bool {
        var found = false
        for (_, device) in devices where device.armIfNeeded(self) { found = true }
        if found { handOverPolled() }
        return found
    }

    // MARK: Pumps

    /// What a pump task serves.
    enum PumpTarget: Sendable, Hashable {
        case connectionManager
        case device(UInt)
        case asyncEvents(UInt)
    }

    /// Serves `target` once without blocking; false when there is nothing to serve any more.
    func service(_ target: PumpTarget) -> Bool {
        switch target {
        case .connectionManager:
            serviceConnectionManager()
            return true
        case .device(let key):
            guard let device = device(key) else { return false }
            // While the core polls the queues itself, an event would only repeat what it finds:
            // the queue is armed again when the core is about to park (``coreWillPark()``).
            device.serviceCompletions(self, arm: idlePollingHandlers == 0)
            handOverPolled()
            return true
        case .asyncEvents(let key):
            guard let device = device(key) else {
                AsyncEvents.unwatch(device: key)
                return false
            }
            AsyncEvents.drain(device.verbs)
            return true
        }
    }

    /// Delivers the completions of the device `key` that its channel's readiness announced,
    /// without reading the channel's event or re-arming the queue: ``service(_:)`` does both at
    /// the end of the turn. False if the device is gone.
    func deliverCompletions(ofDevice key: UInt) -> Bool {
        guard let device = device(key) else { return false }
        drainCompletions(of: device)
        return true
    }

    /// The core is idle: polls every device's queue until it is empty, and hands what it found
    /// over at once (``CoreIdlePoller``). Whether it found anything.
    func pollWhileIdle() -> Bool {
        var found = false
        inIdlePoll = true
        var index = 0
        // A plain loop, no helper taking a closure: that cost retains on every pass (counted).
        while index < polled.count {  // unretained: the devices live as long as the context
            if polled[index]._withUnsafeGuaranteedRef({ $0.pollUntilEmpty(self) }) { found = true }
            index += 1
        }
        if found { handOverPolled() }
        inIdlePoll = false
        return found
    }

    /// Polls `device`'s queue until it is empty, without waiting for its channel (before a
    /// disconnect is acted on, so messages that arrived first are delivered first).
    func drainCompletions(of device: RDMADeviceContext) {
        device.pollUntilEmpty(self)
        handOverPolled()
    }

    /// Routes one completion by its `wr_id` (the only field valid on error). Completions of a
    /// connection already gone (flushed after its queue pair was destroyed) are dropped.
    func route(_ completion: WorkCompletion) {
        connections[completion.id.connection]?.completed(completion)
    }

    private func startPump(_ target: PumpTarget, descriptor: Int32) {
        // The first service runs at the end of this turn, once the caller has the context.
        let pump = Pump(context: self, target: target, descriptor: descriptor)
        pumps.append(pump)
        serveAtTurnEnd(pump)
    }
}

/// Serves one descriptor of a core's RDMA context (a device's completion channel, its
/// asynchronous events, the rdma_cm channel): serve, then ask the core to call again when the
/// descriptor is readable. It runs from the core's loop (``Core/whenReadable(_:_:)``): no task,
/// no continuation and no job per event. It ends when the core stops, or when the context or the
/// target is gone.
///
/// A completion channel is watched once for good (``Core/watchReadable(_:_:)``: one multishot
/// poll on io_uring, no submission per event): its readiness is only a hint, since each service
/// re-arms the queue and polls it until it is empty. A readiness delivers the completions at
/// once and leaves the event's read and the re-arm to the end of the turn, after the woken tasks
/// have sent (see ``RDMADeviceContext/serviceCompletions(_:)``). The other two channels carry
/// events that must all be read, so their pumps ask again after each service.
private final class Pump: CoreReadinessHandler {
    /// Not retained: the core's locals own the context (until the core stops), and its deinit
    /// clears this (a weak reference would cost the context a side table, and every retain and
    /// release of it a lookup there). Unmanaged rather than `unowned(unsafe)`: each load of the
    /// latter is retained and released around its use (see ``withContext(_:)``).
    var context: Unmanaged<RDMACoreContext>?
    let core: Core
    let target: RDMACoreContext.PumpTarget
    let descriptor: Int32
    /// The completion channel's lasting watch, once started.
    private var watch: CoreReadinessWatch?
    /// Whether a full service (read the channel's event, re-arm, poll) waits for the turn's end
    /// (``RDMACoreContext/serveAtTurnEnd(_:)``).
    private var serviceScheduled = false

    init(context: RDMACoreContext, target: RDMACoreContext.PumpTarget, descriptor: Int32) {
        self.context = Unmanaged.passUnretained(context)
        self.core = context.core
        self.target = target
        self.descriptor = descriptor
    }

    /// The service the context runs at the end of a turn: the first, in the turn that started
    /// the pump; for a completion channel also the one that follows each readiness.
    func serveNow() {
        serviceScheduled = false
        serve()
    }

    /// Runs `body` with the context, unless it is gone, without retaining it.
    @inline(__always)
    private func withContext<R>(_ body: (RDMACoreContext) -> R) -> R? {
        context?._withUnsafeGuaranteedRef(body)
    }

    func coreDescriptorIsReadable(_ result: Int32) {
        guard result >= 0 else { return end() }  // the core is stopping
        guard case .device(let key) = target, watch != nil else { return serve() }
        // Completions first: the tasks they wake run in this turn, and post their replies
        // before the channel's event is read and the queue re-armed, at the turn's end.
        guard withContext({ $0.deliverCompletions(ofDevice: key) }) == true else { return end() }
        guard !serviceScheduled else { return }
        serviceScheduled = true
        withContext { $0.serveAtTurnEnd(self) }
    }

    private func serve() {
        guard withContext({ $0.service(target) }) == true else { return end() }
        guard watch == nil else { return }  // the lasting watch calls again by itself
        do {
            if case .device = target {
                watch = try core.watchReadable(descriptor, self)
            } else {
                try core.whenReadable(descriptor, self)
            }
        } catch {
            end()
        }
    }

    private func end() {
        if let watch {
            self.watch = nil
            core.cancelWatch(watch)
        }
        // Another core may read the device's asynchronous events from now on.
        if case .asyncEvents(let key) = target { AsyncEvents.unwatch(device: key) }
    }
}

