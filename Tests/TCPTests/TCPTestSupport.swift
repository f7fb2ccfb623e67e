#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
@testable import NetTCP
import NetTransport
import Testing

/// A runtime for one test; honours `NET_RUNTIME_BACKEND`.
func withRuntime<T>(cores: Int = 1, _ body: (Runtime) async throws -> T) async throws -> T {
    let runtime = try Runtime(configuration: .defaults { $0.coreCount = cores })
    // `stop()` rather than a blocking `shutdown()`: tests share Swift's small cooperative pool.
    do {
        let result = try await body(runtime)
        await runtime.stop()
        return result
    } catch {
        await runtime.stop()
        throw error
    }
}

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

/// The error a call ended with, or `nil`.
func caught(_ body: () async throws -> Void) async -> (any Error)? {
    do { try await body(); return nil } catch { return error }
}

/// A seeded generator (SplitMix64), so a failing random test can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
