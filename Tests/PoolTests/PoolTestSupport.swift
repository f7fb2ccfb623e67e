import NetPool
import NetRuntime
import Synchronization

/// A runtime for one test; honours `NET_RUNTIME_BACKEND`.
func withRuntime<T>(cores: Int = 1, _ body: (Runtime) async throws -> T) async throws -> T {
    let runtime = try Runtime(configuration: .defaults { $0.coreCount = cores })
    do {
        let result = try await body(runtime)
        await runtime.stop()
        return result
    } catch {
        await runtime.stop()
        throw error
    }
}

/// A clock the test moves by hand.
final class TestClock: PoolClock {
    let time = Mutex(Deadline(nanoseconds: 1_000_000_000))
    func now() -> Deadline { time.withLock { $0 } }
    func advance(_ duration: Duration) { time.withLock { $0 = $0 + duration } }
}

/// A connection that only records whether it was closed.
final class FakeConnection: PooledConnection {
    let name: String
    var isUsable = true
    var closed = false
    init(_ name: String) { self.name = name }
    func close() async {
        closed = true
        isUsable = false
    }
}

/// A seeded generator (SplitMix64), for reproducible jitter.
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

let peerA = PeerAddress.socket(SocketAddress(host: "127.0.0.1", port: 1001)!)
let peerB = PeerAddress.socket(SocketAddress(host: "127.0.0.1", port: 1002)!)
let peerC = PeerAddress.socket(SocketAddress(host: "127.0.0.1", port: 1003)!)
