public import NetRuntime
public import NetTransport

/// Dials TCP connections; Sendable, so one dialer serves every core (and the connection pool).
public struct TCPDialer: TransportDialer {
    /// How dialled connections behave.
    public var configuration: TCPConfiguration

    /// A dialer with `configuration`.
    public init(configuration: TCPConfiguration = .init()) {
        self.configuration = configuration
    }

    /// Connects to `address` from `core` within `connectTimeout`.
    ///
    /// - Throws: ``TransportError`` `.connectFailed` (refused, unreachable) or `.timedOut`.
    public func dial(_ address: SocketAddress, on core: Core) async throws -> TCPTransport {
        let fd: Int32
        do {
            fd = try await core.connectTCP(to: address, timeout: configuration.connectTimeout)
        } catch let error as IOError where error.isTimeout {
            throw TransportError(.timedOut, "connect to \(address) timed out", underlying: error)
        } catch let error as IOError {
            throw TransportError(.connectFailed, "connect to \(address) failed", underlying: error)
        } catch {
            throw TransportError.from(error, during: "connect to \(address)")
        }
        do {
            return try TCPTransport(fd: fd, core: core, configuration: configuration)
        } catch {
            try? await core.close(fd)
            throw TransportError.from(error, during: "connect to \(address)")
        }
    }
}
