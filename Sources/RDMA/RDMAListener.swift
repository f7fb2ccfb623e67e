#if canImport(Glibc)
import Glibc
#endif
import CRDMA
public import NetRuntime
public import NetTransport

/// Accepts RDMA connections on one core, through an rdma_cm id listening on an address of an
/// RDMA device (rdma_cm cannot route 127.0.0.1: bind to the device's own address).
///
/// ```swift
/// let listener = try RDMAListener.bind(SocketAddress(host: "10.77.0.1", port: 0)!, on: core)
/// let connection = try await listener.accept()
/// ```
public final class RDMAListener: TransportListener {
    /// The core whose connections it accepts.
    public let core: Core
    /// The address it listens on (with the port the system chose for port 0).
    public let localAddress: SocketAddress
    /// How accepted connections behave.
    public let configuration: RDMATransport.Configuration
    let context: RDMACoreContext
    let id: UnsafeMutablePointer<rdma_cm_id>
    let events: CMEventQueue
    private var closed = false
    /// Connect requests refused (bad handshake, no resources).
    public private(set) var rejected = 0

    private init(core: Core, address: SocketAddress, configuration: RDMATransport.Configuration, context: RDMACoreContext,
                 id: UnsafeMutablePointer<rdma_cm_id>, events: CMEventQueue) {
        self.core = core
        self.localAddress = address
        self.configuration = configuration
        self.context = context
        self.id = id
        self.events = events
    }

    /// Listens on `address` (port 0 lets the system choose) from `core`; call on the core.
    ///
    /// - Throws: ``TransportError`` `.unavailable` when the machine has no RDMA device or the
    ///   address is on none, `.connectFailed` when the address cannot be bound.
    public static func bind(_ address: SocketAddress, on core: Core,
                            configuration: RDMATransport.Configuration = .defaults) throws -> RDMAListener {
        let configuration = configuration.normalized
        let context = try RDMACoreContext.on(core, configuration: configuration)
        var raw: UnsafeMutablePointer<rdma_cm_id>?
        guard rdma_create_id(context.eventChannel, &raw, nil, RDMA_PS_TCP) == 0, let id = raw else {
            throw verbsError(.connectFailed, "rdma_create_id")
        }
        let bound = address.withSockAddr { address, _ in rdma_bind_addr(id, UnsafeMutablePointer(mutating: address)) }
        guard bound == 0, rdma_listen(id, configuration.backlog) == 0 else {
            let error = verbsError(.connectFailed, "rdma_bind_addr/rdma_listen on \(address)")
            rdma_destroy_id(id)
            throw error
        }
        let local = RDMATransport.address(rdma_get_local_addr(id)) ?? address
        return RDMAListener(core: core, address: local, configuration: configuration, context: context, id: id,
                            events: context.register(id))
    }

    /// Waits for the next connect request whose handshake is ours, accepts it, and returns the
    /// connection once established. A bad request is rejected and does not stop the listener.
    public func accept() async throws -> RDMATransport {
        while true {
            guard !closed else { throw TransportError(.closed, "the listener is closed") }
            let request: CMEvent
            do {
                request = try await events.next(deadline: nil)
            } catch {
                if closed { throw TransportError(.closed, "the listener is closed") }
                throw TransportError.from(error, during: "accept")
            }
            guard request.type == RDMA_CM_EVENT_CONNECT_REQUEST else { continue }
            if let connection = await establish(request) { return connection }
        }
    }

    /// Accepts one request; nil (and the request rejected) when it cannot be.
    private func establish(_ request: CMEvent) async -> RDMATransport? {
        let id = request.id
        let peer: Handshake
        do {
            peer = try Handshake(parsing: request.privateData)
        } catch {
            reject(id)
            return nil
        }
        let queue = context.register(id)
        let connection: RDMATransport
        do {
            connection = try RDMATransport(id: id, events: queue, context: context, configuration: configuration, peer: peer)
        } catch {
            context.unregister(id)
            reject(id)
            return nil
        }
        let handshake = connection.ownHandshake.bytes
        let readDepth = min(configuration.readDepth, connection.device.maximumReadDepth)
        let accepted = handshake.withUnsafeBytes { bytes in
            var parameters = crdma_conn_param(
                bytes.baseAddress, UInt8(bytes.count), configuration.retryCount, configuration.rnrRetryCount, readDepth)
            return rdma_accept(id, &parameters)
        }
        guard accepted == 0 else {
            connection.fail(TransportError(.connectFailed, "rdma_accept failed"))
            return nil
        }
        do {
            let event = try await queue.next(deadline: .now + configuration.connectTimeout)
            guard event.type == RDMA_CM_EVENT_ESTABLISHED else {
                connection.fail(TransportError(.connectFailed, "accept: \(event.name)"))
                return nil
            }
        } catch {
            connection.fail(TransportError(.connectFailed, "accept: \(error)"))
            return nil
        }
        connection.watchConnectionEvents()
        return connection
    }

    private func reject(_ id: UnsafeMutablePointer<rdma_cm_id>) {
        rejected += 1
        rdma_reject(id, nil, 0)
        rdma_destroy_id(id)
    }

    /// Stops listening; requests not yet accepted are rejected.
    public func close() async {
        guard !closed else { return }
        closed = true
        let waiting = events.drain()
        context.unregister(id)
        for event in waiting where event.type == RDMA_CM_EVENT_CONNECT_REQUEST { reject(event.id) }
        rdma_destroy_id(id)
    }

    deinit {
        if !closed {
            context.unregister(id)
            rdma_destroy_id(id)
        }
    }
}
