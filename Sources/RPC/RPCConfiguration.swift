public import Logging

/// Limits and timings of RPC connections, each with a safe default.
public struct RPCConfiguration: Sendable {
    /// Calls in flight per connection. A server answers calls over it with
    /// ``RPCError/Code/resourceExhausted``; a client's callers wait for room, or fail fast with
    /// that code when ``failFastWhenFull`` is set.
    public var maximumConcurrentCalls = 1024
    /// Whether a client fails a call at once, rather than waiting, when the connection has
    /// `maximumConcurrentCalls` in flight.
    public var failFastWhenFull = false
    /// Metadata bytes per request.
    public var maximumMetadataBytes = 4096
    /// How often a client pings a connection that has been silent that long; nil turns it off.
    /// Silence is timed from the coarse clock (`Deadline.coarseNow`), so a ping may go a few
    /// milliseconds early.
    public var keepaliveInterval: Duration? = .seconds(10)
    /// Pings in a row left unanswered before the connection is declared lost.
    public var keepaliveAllowedMisses = 2
    /// How long a draining server waits for calls in flight before closing anyway. It bounds
    /// the go-away's send too: a client that reads nothing cannot hold the drain open.
    public var drainTimeout: Duration = .seconds(10)
    /// How long a server connection closed for a broken protocol (a bad frame, a duplicate call
    /// ID, a client that sends without reading) may take to send its error before it closes
    /// anyway: a peer that reads nothing cannot keep it open.
    public var closeTimeout: Duration = .seconds(2)
    /// Where connection-level events go (not per call).
    public var logger = Logger(label: "swift-net.rpc")

    /// The defaults.
    public init() {}

    /// The defaults, changed by `body`.
    public static func defaults(_ body: (inout RPCConfiguration) -> Void) -> RPCConfiguration {
        var configuration = RPCConfiguration()
        body(&configuration)
        return configuration
    }
}
