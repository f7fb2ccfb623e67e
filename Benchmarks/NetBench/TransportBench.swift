import NetRuntime
import NetTransport

/// The framed echo over a `Transport`: the same shape as the peers' length-prefixed echo.
enum TransportEcho {
    /// Accepts from `listener` (on its core) and runs `reader` (``DirectLoops``' `echo`) on each
    /// connection, in a task of its own on the core.
    static func serve<Listener: TransportListener>(
        _ listener: Listener, on core: isolated Core, reader: @escaping (Listener.Connection) async -> Void
    ) async throws {
        while true {
            let connection = try await listener.accept()
            try core.spawn { await reader(connection) }
        }
    }
}

/// The client side of the transport workloads, over the connections `dialer` makes.
enum TransportClient {
    /// `roundTrips` times the rtt workload over one connection (``DirectLoops``).
    static func measure<Dialer: TransportDialer>(
        _ spec: WorkloadSpec, dialer: Dialer, on core: isolated Core,
        roundTrips: @escaping (WorkloadSpec, Dialer.Connection, Message) async throws -> [UInt64]
    ) async throws -> Measurement {
        var connections: [Dialer.Connection] = []
        for _ in 0..<spec.connections { connections.append(try await dialer.dial(spec.address, on: core)) }
        defer { for c in connections { _ = try? core.spawn { await c.close() } } }
        let payload = payload(spec.size, from: connections[0])
        switch spec.workload {
        case .rtt:
            let c = connections[0]
            return try await measureRoundTrips(spec, on: core) { try await roundTrips(spec, c, payload) }
        case .rate, .bulk:
            return try await pipelined(connections, payload: payload, spec: spec, on: core)
        }
    }

    /// Keeps `depth` requests in flight on every connection: each reply sends the next request.
    static func pipelined<Connection: Transport>(
        _ connections: [Connection], payload: Message, spec: WorkloadSpec, on core: isolated Core
    ) async throws -> Measurement {
        let tally = Tally()
        for c in connections {
            // Nonisolated on the core's executor: isolated to the core actor, this generic loop
            // ran 3.7 jobs per completion (0.1 so), and TCP's rate fell to a sixth.
            try core.spawn {
                do {
                    for _ in 0..<spec.depth { try await c.send(payload) }
                    while true {
                        let reply = try await c.nextFrame(cancellable: false)
                        tally.completions += 1
                        tally.bytes += reply.count
                        if try !c.trySend(payload) { try await c.send(payload) }
                    }
                } catch {}
            }
        }
        try await core.sleep(for: .milliseconds(Int64(spec.warmupSeconds * 1000)))
        let (c0, b0, t0) = (tally.completions, tally.bytes, Deadline.now)
        try await core.sleep(for: .milliseconds(Int64(spec.durationSeconds * 1000)))
        let (c1, b1, t1) = (tally.completions, tally.bytes, Deadline.now)
        for c in connections { await c.close() }
        return Measurement(completions: c1 - c0, bytes: b1 - b0, seconds: Double(t1.nanoseconds - t0.nanoseconds) / 1e9)
    }

    /// A payload built in the transport's own buffer (registered memory for RDMA), sent again and
    /// again without a copy.
    static func payload(_ size: Int, from connection: some Transport) -> Message {
        var buffer = connection.allocateBuffer(capacity: size)
        buffer.append(contentsOf: repeatElement(UInt8(0x5a), count: size))
        return buffer.freeze()
    }
}

/// Counts completions; shared by tasks on one core only.
final class Tally {
    var completions = 0
    var bytes = 0
    var stopped = false
}

/// Runs `loop`, which times `spec.warmup + spec.count` round trips, and notes the client core's
/// jobs, remote jobs and parks per round trip.
///
/// The loop runs in a task of its own, nonisolated on the core's executor (``Core/spawn(_:)``),
/// as docs/RUNTIME.md recommends for a connection's loop: isolated to the core's actor, every
/// await would end in a hop back to the actor. The task's closure calls `loop` once; the loop
/// itself is nonisolated(nonsending) code (``DirectLoops``, ``timeRoundTrips(_:_:)``).
func measureRoundTrips(
    _ spec: WorkloadSpec, on core: isolated Core, _ loop: @escaping () async throws -> [UInt64]
) async throws -> Measurement {
    let before = core.statistics
    let samples = try await core.spawn { @concurrent in try await loop() }.value
    let after = core.statistics
    let n = Double(spec.warmup + samples.count)
    note("# client core per round trip: \(format(Double(after.jobsRun - before.jobsRun) / n)) jobs, \(format(Double(after.remoteJobs - before.remoteJobs) / n)) from other threads, \(format(Double(after.parks - before.parks) / n)) parks")
    return Measurement(samples: samples)
}

/// Times `spec.count` round trips after `spec.warmup` (stopping at `spec.maxSeconds`), each a call
/// of `roundTrip`, which returns the reply's size (the RPC workloads; generic code, so each call
/// and each await in it ends in an executor check, see ``DirectLoops``).
func timeRoundTrips(_ spec: WorkloadSpec, _ roundTrip: () async throws -> Int) async throws -> [UInt64] {
    var timer = try RoundTripTimer(spec)
    for i in 0..<(spec.warmup + spec.count) {
        let size = try await roundTrip()
        precondition(size == spec.size, "short echo")
        if !timer.lap(i) { break }
    }
    return timer.nanoseconds()
}
