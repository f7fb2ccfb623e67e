#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
@testable import NetRDMA
import NetTransport
import Testing
import NetTestSupport


/// A mutable slot tasks on one core can fill (non-Sendable, so it stays on the core).
final class Box<T> {
    var value: T?
}

/// Configuration with the guest's slower clock.
func scaledConfiguration(_ configure: (inout RDMATransport.Configuration) -> Void = { _ in }) -> RDMATransport.Configuration {
    RDMATransport.Configuration.defaults {
        $0.connectTimeout = RDMATestEnvironment.scaled(.seconds(3))
        $0.closeTimeout = RDMATestEnvironment.scaled(.seconds(1))
        configure(&$0)
    }
}

/// A connected pair on `core`: (dialled client, accepted server, listener).
func connectedPair(
    on core: isolated Core, client: RDMATransport.Configuration = scaledConfiguration(),
    server: RDMATransport.Configuration = scaledConfiguration()
) async throws -> (RDMATransport, RDMATransport, RDMAListener) {
    let listener = try RDMAListener.bind(SocketAddress(host: RDMATestEnvironment.address, port: 0)!, on: core, configuration: server)
    let accepted = Box<RDMATransport>()
    // Accept and dial at once: the dial completes only when the listener accepts.
    let accepting = Task {
        _ = core
        accepted.value = try await listener.accept()
    }
    let dialled = try await RDMADialer(configuration: client).dial(listener.localAddress, on: core)
    try await accepting.value
    return (dialled, accepted.value!, listener) // '!': the accept task returned without throwing
}

/// Waits until `condition` holds, yielding to the core (whose completions change it); false if
/// it did not within `timeout`, a bound, not a pace.
func waitUntil(_ core: Core, timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws -> Bool {
    let deadline = Deadline.now + RDMATestEnvironment.scaled(timeout)
    while !condition() {
        if deadline.hasPassed { return false }
        await Task.yield()
    }
    return true
}


/// A payload that tells its sender and sequence number apart from every other.
func payload(sender: Int, sequence: Int, size: Int) -> [UInt8] {
    var bytes = withUnsafeBytes(of: UInt32(sender).bigEndian) { Array($0) } + withUnsafeBytes(of: UInt32(sequence).bigEndian) { Array($0) }
    while bytes.count < size { bytes.append(UInt8(truncatingIfNeeded: bytes.count &* 7 &+ sender &+ sequence)) }
    return Array(bytes.prefix(max(size, 8)))
}

/// The sender and sequence number of a ``payload(sender:sequence:size:)``.
func header(_ message: Message) -> (sender: Int, sequence: Int) {
    message.withUnsafeBytes { raw in
        (Int(UInt32(bigEndian: raw.loadUnaligned(as: UInt32.self))),
         Int(UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self))))
    }
}
