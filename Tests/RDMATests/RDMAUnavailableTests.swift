import NetRuntime
import NetRDMA
import NetTransport
import NetTestSupport
import Testing

/// On a machine without an RDMA device (every host here: the kernel has no InfiniBand), dialling
/// and listening fail with a clear, typed error instead of crashing.
@Suite("RDMA without a device", .enabled(if: !RDMATestEnvironment.hasDevice, "this machine has an RDMA device"))
struct RDMAUnavailableTests {
    @Test("Dial throws .unavailable naming the missing device")
    func dial() async throws {
        try await withRuntime { runtime in
            let error = try await runtime.run(on: 0) { core -> TransportError? in
                let failure = await caught {
                    _ = try await RDMADialer().dial(SocketAddress(host: "10.77.0.1", port: 7471)!, on: core)
                }
                return failure as? TransportError
            }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("no RDMA device") == true)
        }
    }

    @Test("Listen throws .unavailable; a second try fails the same way")
    func listen() async throws {
        try await withRuntime { runtime in
            let codes = try await runtime.run(on: 0) { core -> [TransportError.Code?] in
                var codes: [TransportError.Code?] = []
                for _ in 0..<2 {
                    do {
                        _ = try RDMAListener.bind(SocketAddress(host: "0.0.0.0", port: 0)!, on: core)
                        codes.append(nil)
                    } catch {
                        codes.append((error as? TransportError)?.code)
                    }
                }
                return codes
            }
            #expect(codes == [.unavailable, .unavailable])
        }
    }
}
