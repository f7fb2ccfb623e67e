import CoreMetrics
import NetRuntime

/// swift-metrics instruments of one method on the server: calls, errors by status, latency.
struct MethodMetrics: Sendable {
    let calls: Counter
    let errors: Counter
    let latency: Timer

    init(side: String, method: String) {
        let dimensions = [("method", method)]
        calls = Counter(label: "rpc_\(side)_calls_total", dimensions: dimensions)
        errors = Counter(label: "rpc_\(side)_errors_total", dimensions: dimensions)
        latency = Timer(label: "rpc_\(side)_latency", dimensions: dimensions)
    }

    /// Counts a call that ended, and times it from `start` (`nil`: calls are not timed).
    func record(start: Deadline?, failed: Bool) {
        calls.increment()
        if failed { errors.increment() }
        if let start { latency.recordNanoseconds(Int64(Deadline.now.nanoseconds &- start.nanoseconds)) }
    }
}
