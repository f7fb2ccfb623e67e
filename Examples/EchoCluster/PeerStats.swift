import Synchronization

/// What one node saw calling one peer. Callers add to it once a second (their own samples are
/// kept on their core in between), the reporter reads it once a second.
final class PeerStats: Sendable {
    struct Window {
        var calls = 0
        var errors = 0
        var reconnects = 0
        var latencies: [UInt64] = []  // ns, this second
        var lastError = ""
    }
    private let window = Mutex(Window())
    private let total = Mutex((calls: 0, errors: 0))

    func add(calls: Int, errors: Int, latencies: [UInt64], reconnects: Int, lastError: String?) {
        window.withLock {
            $0.calls += calls
            $0.errors += errors
            $0.latencies += latencies
            $0.reconnects = reconnects
            if let lastError { $0.lastError = lastError }
        }
    }

    /// The second's figures, and the totals so far; starts a new second.
    func take() -> (calls: Int, errors: Int, reconnects: Int, p50: Double, p99: Double, totalCalls: Int, totalErrors: Int, lastError: String) {
        let w = window.withLock { w -> Window in
            let taken = w
            w.calls = 0
            w.errors = 0
            w.latencies.removeAll(keepingCapacity: true)
            return taken
        }
        let totals = total.withLock { t -> (calls: Int, errors: Int) in
            t.calls += w.calls
            t.errors += w.errors
            return t
        }
        let sorted = w.latencies.sorted()
        func pct(_ p: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            return Double(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) / 1000
        }
        return (w.calls, w.errors, w.reconnects, pct(0.5), pct(0.99), totals.calls, totals.errors, w.lastError)
    }
}
