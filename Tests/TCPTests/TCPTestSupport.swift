#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
@testable import NetTCP
import NetTransport
import Testing
import NetTestSupport


/// A listening group on 127.0.0.1 (or `host`) for `cores` cores.
func bindGroup(_ runtime: Runtime, host: String = "127.0.0.1", configuration: TCPConfiguration = .init()) throws -> TCPListenerGroup {
    try TCPListenerGroup.bind(SocketAddress(host: host, port: 0)!, cores: runtime.cores.count, configuration: configuration)
}

/// A connected pair of transports on `core`: (dialled client, accepted server, the listener).
func connectedPair(
    on core: Core, group: TCPListenerGroup, configuration: TCPConfiguration = .init()
) async throws -> (TCPTransport, TCPTransport, TCPListener) {
    let listener = try group.listener(on: core)
    let (client, server) = try await connectedPair(on: core, listener: listener, configuration: configuration)
    return (client, server, listener)
}

/// A connected pair of transports through an existing listener: (dialled client, accepted server).
func connectedPair(
    on core: Core, listener: TCPListener, configuration: TCPConfiguration = .init()
) async throws -> (TCPTransport, TCPTransport) {
    // The kernel completes the handshake into the backlog: connect first, then accept.
    let client = try await TCPDialer(configuration: configuration).dial(listener.localAddress, on: core)
    return (client, try await listener.accept())
}

/// A raw socket connected to `address` from `core` (the peer side of bad-input tests), and the
/// transport the listener accepted for it.
func rawPeer(on core: Core, listener: TCPListener) async throws -> (Int32, TCPTransport) {
    let fd = try await core.connectTCP(to: listener.localAddress)
    return (fd, try await listener.accept())
}

/// Writes `bytes` on a raw socket from the core.
func rawWrite(_ core: Core, _ fd: Int32, _ bytes: [UInt8]) async throws {
    let message = Message(bytes)
    guard let base = message.baseAddress else { return }
    try await core.sendAll(fd, UnsafeRawBufferPointer(start: base, count: message.count))
}

/// One frame's bytes: a 4-byte big-endian length, then the payload.
func frame(_ payload: [UInt8]) -> [UInt8] {
    withUnsafeBytes(of: UInt32(payload.count).bigEndian) { Array($0) } + payload
}

/// A payload that tells its own sender and sequence number apart from every other.
func payload(sender: Int, sequence: Int, size: Int) -> [UInt8] {
    var bytes = withUnsafeBytes(of: UInt32(sender).bigEndian) { Array($0) } + withUnsafeBytes(of: UInt32(sequence).bigEndian) { Array($0) }
    while bytes.count < size { bytes.append(UInt8(truncatingIfNeeded: bytes.count &* 7 &+ sender &+ sequence)) }
    return Array(bytes.prefix(max(size, 8)))
}


