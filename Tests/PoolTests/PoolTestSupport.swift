import NetPool
import NetRuntime
import Synchronization
import NetTestSupport

/// A clock the test moves by hand.
final class TestClock: PoolClock {
    let time = Mutex(Deadline(nanoseconds: 1_000_000_000))
    func now() -> Deadline { time.withLock { $0 } }
    func advance(_ duration: Duration) { time.withLock { $0 = $0 + duration } }
}

/// A connection that records how it was closed, with calls in flight the test sets.
final class FakeConnection: PooledConnection {
    let name: String
    var isUsable = true
    var closed = false
    /// Calls in flight (``hasWorkInFlight``).
    var inFlight = 0
    /// Whether the pool asked for a close once idle (eviction) rather than at once.
    var closeWhenIdleAsked = false
    init(_ name: String) { self.name = name }
    var hasWorkInFlight: Bool { inFlight > 0 }
    func close() async {
        closed = true
        isUsable = false
    }
    func closeWhenIdle() async {
        closeWhenIdleAsked = true
        if inFlight == 0 { await close() }
    }
}

let peerA = PeerAddress.socket(SocketAddress(host: "127.0.0.1", port: 1001)!)
let peerB = PeerAddress.socket(SocketAddress(host: "127.0.0.1", port: 1002)!)
let peerC = PeerAddress.socket(SocketAddress(host: "127.0.0.1", port: 1003)!)
