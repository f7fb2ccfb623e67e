import CoreMetrics
import NetRuntime

/// swift-metrics instruments of one method on the server: calls, errors by status, latency.
struct MethodMetrics: Sendable {
    let calls: Counter
    let errors: Counter
    let latency: Timer
    /// Whether calls are timed: only when a metrics backend was bootstrapped before the server
    /// was made. Without one, timing a call would cost two clock reads for nothing.
    let timed: Bool

    init(side: String, method: String) {
        timed = !(MetricsSystem.factory is NOOPMetricsHandler)
        let dimensions = [("method", method)]
        calls = Counter(label: "rpc_\(side)_calls_total", dimensions: dimensions)
        errors = Counter(label: "rpc_\(side)_errors_total", dimensions: dimensions)
        latency = Timer(label: "rpc_\(side)_latency", dimensions: dimensions)
    }

    /// Counts a call that ended, and times it from `start` (`nil` when not ``timed``).
    func record(start: Deadline?, failed: Bool) {
        calls.increment()
        if failed { errors.increment() }
        if let start { latency.recordNanoseconds(Int64(Deadline.now.nanoseconds &- start.nanoseconds)) }
    }
}
