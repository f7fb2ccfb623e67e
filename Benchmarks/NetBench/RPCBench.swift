import ArgumentParser
import NetRPC
import NetRuntime
import NetTransport

/// The benchmark's service: a raw-bytes echo (the request's own bytes go back, no copy).
enum BenchAPI {
    static let echo = RPCMethod<Message, Message>.raw(id: 1, name: "Bench.echo")
}

struct BenchService: RPCService {
    /// How the echo handler is registered.
    var handler: HandlerKind = .inline

    func register(into handlers: inout RPCHandlers) {
        switch handler {
        case .inline: handlers.registerInline(BenchAPI.echo) { request, _ in request }
        case .task: handlers.register(BenchAPI.echo) { request, _ in request }
        }
    }
}

/// How the rpc server runs its echo handler.
enum HandlerKind: String, ExpressibleByArgument, CaseIterable {
    /// `registerInline`: in the connection's read loop, no task (what an echo would use).
    case inline
    /// `register`: on a worker task, as a handler that may suspend runs.
    case task
}

/// The client side of the rpc workloads: unary echo calls on `RPCConnection`s over the
/// connections `dialer` makes.
enum RPCClientBench {
    static func measure<Dialer: TransportDialer>(
        _ spec: WorkloadSpec, dialer: Dialer, on core: isolated Core
    ) async throws -> Measurement {
        var connections: [RPCConnection<Dialer.Connection>] = []
        for _ in 0..<spec.connections {
            connections.append(try RPCConnection(try await dialer.dial(spec.address, on: core)))
        }
        defer { for c in connections { _ = try? core.spawn { await c.close() } } }
        let payload = TransportClient.payload(spec.size, from: connections[0].transport)
        let options = RPCCallOptions(cancellable: !spec.uncancellable)
        switch spec.workload {
        case .rtt:
            let rpc = connections[0]
            return try await measureRoundTrips(spec, on: core) {
                try await timeRoundTrips(spec) { try await rpc.call(BenchAPI.echo, payload, options: options).count }
            }
        case .rate, .bulk:
            let tally = Tally()
            for rpc in connections where spec.batched {
                let batch = Array(repeating: payload, count: spec.depth)
                try core.spawn {
                    while !tally.stopped {
                        for outcome in await rpc.callAll(BenchAPI.echo, batch, options: options) {
                            guard case .success(let reply) = outcome else { return }
                            tally.completions += 1
                            tally.bytes += reply.count
                        }
                    }
                }
            }
            for rpc in connections where !spec.batched {
                for _ in 0..<spec.depth {
                    // Nonisolated on the core's executor: an actor-isolated task pays hops per await.
                    try core.spawn {
                        while !tally.stopped {
                            guard let reply = try? await rpc.call(BenchAPI.echo, payload, options: options) else { return }
                            tally.completions += 1
                            tally.bytes += reply.count
                        }
                    }
                }
            }
            try await core.sleep(for: .milliseconds(Int64(spec.warmupSeconds * 1000)))
            let (c0, b0, t0, s0) = (tally.completions, tally.bytes, Deadline.now, core.statistics)
            try await core.sleep(for: .milliseconds(Int64(spec.durationSeconds * 1000)))
            let (c1, b1, t1, s1) = (tally.completions, tally.bytes, Deadline.now, core.statistics)
            let n = Double(max(c1 - c0, 1))
            note("# client core per call: \(format(Double(s1.jobsRun - s0.jobsRun) / n)) jobs, \(format(Double(s1.remoteJobs - s0.remoteJobs) / n)) from other threads, \(format(Double(s1.parks - s0.parks) / n)) parks")
            tally.stopped = true
            return Measurement(completions: c1 - c0, bytes: b1 - b0, seconds: Double(t1.nanoseconds - t0.nanoseconds) / 1e9)
        }
    }
}
