#if canImport(Glibc)
import Glibc
#endif
import CRDMA
public import NetRuntime
public import NetTransport

/// Dials RDMA connections through rdma_cm; Sendable, so one dialer serves every core.
///
/// ```swift
/// let connection = try await RDMADialer().dial(SocketAddress(host: "10.77.0.1", port: 7471)!, on: core)
/// ```
public struct RDMADialer: TransportDialer {
    /// How dialled connections behave.
    public var configuration: RDMATransport.Configuration
    /// Test hook: private data sent instead of the handshake (to check that a listener rejects it).
    var handshakeForTesting: [UInt8]?

    /// A dialer with `configuration`.
    public init(configuration: RDMATransport.Configuration = .defaults) {
        self.configuration = configuration
    }

    /// Resolves `address` to an RDMA device and route, creates the queue pair, and connects with
    /// the handshake; the connection lives on `core`. Everything runs on the core's ring: no
    /// thread and no blocking call.
    ///
    /// - Throws: ``TransportError`` `.unavailable` when the machine has no RDMA device,
    ///   `.connectFailed` (unreachable, refused, rejected), `.timedOut` after `connectTimeout`,
    ///   `.protocolViolation` when the peer's handshake is not ours.
    public func dial(_ address: SocketAddress, on core: Core) async throws -> RDMATransport {
        let configuration = self.configuration.normalized
        let context = try RDMACoreContext.on(core, configuration: configuration)
        var raw: UnsafeMutablePointer<rdma_cm_id>?
        guard rdma_create_id(context.eventChannel, &raw, nil, RDMA_PS_TCP) == 0, let id = raw else {
            throw verbsError(.connectFailed, "rdma_create_id")
        }
        let queue = context.register(id)
        let deadline = Deadline.now + configuration.connectTimeout
        let milliseconds = max(configuration.connectTimeout.millisecondsClamped, 0)
        var transport: RDMATransport?
        do {
            let resolved = address.withSockAddr { address, _ in
                rdma_resolve_addr(id, nil, UnsafeMutablePointer(mutating: address), milliseconds)
            }
            guard resolved == 0 else { throw verbsError(.connectFailed, "rdma_resolve_addr") }
            _ = try await expect(RDMA_CM_EVENT_ADDR_RESOLVED, on: queue, deadline: deadline, address: address)
            guard rdma_resolve_route(id, milliseconds) == 0 else { throw verbsError(.connectFailed, "rdma_resolve_route") }
            _ = try await expect(RDMA_CM_EVENT_ROUTE_RESOLVED, on: queue, deadline: deadline, address: address)
            let connection = try RDMATransport(id: id, events: queue, context: context, configuration: configuration, peer: nil)
            transport = connection
            let handshake = handshakeForTesting ?? connection.ownHandshake.bytes
            let readDepth = min(configuration.readDepth, connection.device.maximumReadDepth)
            let connected = handshake.withUnsafeBytes { bytes in
                var parameters = crdma_conn_param(
                    bytes.baseAddress, UInt8(bytes.count), configuration.retryCount, configuration.rnrRetryCount, readDepth)
                return rdma_connect(id, &parameters)
            }
            guard connected == 0 else { throw verbsError(.connectFailed, "rdma_connect") }
            let established = try await expect(RDMA_CM_EVENT_ESTABLISHED, on: queue, deadline: deadline, address: address)
            let peer: Handshake
            do {
                peer = try Handshake(parsing: established.privateData)
            } catch {
                throw TransportError(.protocolViolation, "the peer's handshake is not ours: \(error)")
            }
            connection.establish(peer: peer)
            connection.watchConnectionEvents()
            return connection
        } catch {
            if let transport {
                transport.fail(TransportError(.connectFailed, "connect to \(address) failed"))
            } else {
                context.unregister(id)
                rdma_destroy_id(id)
            }
            throw Self.translate(error, address: address)
        }
    }

    /// Waits for `type` on `queue`; any other event means the connect failed.
    private func expect(_ type: rdma_cm_event_type, on queue: CMEventQueue, deadline: Deadline,
                        address: SocketAddress) async throws -> CMEvent {
        let event = try await queue.next(deadline: deadline)
        guard event.type == type else {
            let reason = event.type == RDMA_CM_EVENT_REJECTED ? " (rejected, reason \(event.status))" : " (status \(event.status))"
            throw TransportError(.connectFailed, "connect to \(address): \(event.name)\(reason)")
        }
        return event
    }

    static func translate(_ error: any Error, address: SocketAddress) -> any Error {
        switch error {
        case let error as TransportError: error
        case let error as IOError where error.isTimeout:
            TransportError(.timedOut, "connect to \(address) timed out", underlying: error)
        default: TransportError.from(error, during: "connect to \(address)")
        }
    }
}
