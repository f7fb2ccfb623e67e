#if canImport(Glibc)
import Glibc
#endif
public import NetRuntime
public import NetTransport

/// One listening socket per core on one port (`SO_REUSEPORT`): the kernel spreads incoming
/// connections over the cores, and each connection lives on the core that accepted it.
///
/// ```swift
/// let group = try TCPListenerGroup.bind(SocketAddress(host: "127.0.0.1", port: 0)!, cores: runtime.cores.count)
/// try await runtime.runOnEveryCore { core in
///     let listener = try group.listener(on: core)
///     while true { let connection = try await listener.accept(); ... }
/// }
/// ```
public struct TCPListenerGroup: Sendable {
    /// The address every listener is bound to (with the port the kernel chose for port 0).
    public let address: SocketAddress
    /// How accepted connections behave.
    public let configuration: TCPConfiguration
    private let descriptors: [Int32]

    /// Binds `cores` listening sockets to `address`.
    public static func bind(
        _ address: SocketAddress, cores: Int, configuration: TCPConfiguration = .init()
    ) throws -> TCPListenerGroup {
        precondition(cores >= 1, "at least one core")
        var descriptors: [Int32] = []
        do {
            let first = try Socket.listenTCP(on: address, backlog: configuration.backlog, reusePort: true)
            descriptors.append(first.fd)
            for _ in 1..<cores {
                descriptors.append(try Socket.listenTCP(on: first.address, backlog: configuration.backlog, reusePort: true).fd)
            }
            return TCPListenerGroup(address: first.address, configuration: configuration, descriptors: descriptors)
        } catch {
            for fd in descriptors { Socket.closeNow(fd) }
            throw error
        }
    }

    /// The listener of `core` (the socket for its index); the core owns it from then on.
    public func listener(on core: Core) throws -> TCPListener {
        precondition(descriptors.indices.contains(core.index), "the group was bound for \(descriptors.count) cores")
        let fd = descriptors[core.index]
        try core.adopt(fd)
        return TCPListener(fd: fd, core: core, address: address, configuration: configuration)
    }
}

/// Accepts TCP connections on one core.
public final class TCPListener: TransportListener {
    public let core: Core
    public let localAddress: SocketAddress
    let configuration: TCPConfiguration
    let fd: Int32
    private var closed = false

    init(fd: Int32, core: Core, address: SocketAddress, configuration: TCPConfiguration) {
        self.fd = fd
        self.core = core
        self.localAddress = address
        self.configuration = configuration
    }

    /// Waits for the next connection; it lives on this listener's core.
    public func accept() async throws -> TCPTransport {
        while true {
            // Checked on every turn: a close during the pause after EMFILE frees the number,
            // which another socket may take before the next accept.
            guard !closed else { throw TransportError(.closed, "the listener is closed") }
            let accepted: Int32
            do {
                accepted = try await core.accept(fd).fd
            } catch let error as IOError where error.code == ECONNABORTED || error.code == EMFILE || error.code == ENFILE {
                // One failed handshake or a full descriptor table must not stop the listener.
                if error.code != ECONNABORTED { try await core.sleep(for: .milliseconds(10)) }
                continue
            } catch {
                if closed { throw TransportError(.closed, "the listener is closed") }
                throw TransportError.from(error, during: "accept")
            }
            do {
                return try TCPTransport(fd: accepted, core: core, configuration: configuration)
            } catch {
                try? await core.close(accepted)
            }
        }
    }

    public func close() async {
        guard !closed else { return }
        closed = true
        try? await core.close(fd)
    }
}
