// net-rdma-bench: round-trip latency and bulk echo of NetRDMA in one process, server on core 0 and
// client on core 1, for comparison with perftest on the same device in the same guest run
// (scripts/rdma-bench). A separate executable so NetBench, and programs that use TCP alone, never
// link libibverbs.
//
//   net-rdma-bench rtt  [ADDRESS] [ITERATIONS] [SIZE]    64-byte ping-pong: p50/p99 round trip
//   net-rdma-bench rtt-poll ...                           the same, both sides busy polling
//   (with NET_RDMA_BENCH_CORES=1 the client runs on the server's core: no cross-CPU wake-ups)
//   net-rdma-bench bulk [ADDRESS] [MESSAGES] [SIZE]      1 MiB echo: one-way MB/s
//   net-rdma-bench serve [ADDRESS] [PORT]                 echo server; prints "LISTENING port=N"
//                                                        (the peer that tests kill mid-transfer)
#if canImport(Glibc)
import Glibc
#endif
import NetRDMA
import NetRuntime
import NetTransport

func argument(_ index: Int, _ fallback: String) -> String {
    CommandLine.arguments.count > index ? CommandLine.arguments[index] : fallback
}

let mode = argument(1, "rtt")

if mode == "serve" {
    let host = argument(2, getenv("RDMA_ADDR").map { String(cString: $0) } ?? "10.77.0.1")
    let address = SocketAddress(host: host, port: Int(argument(3, "0")) ?? 0)!
    let runtime = try Runtime(configuration: .defaults { $0.coreCount = 1 })
    try await runtime.run(on: 0) { core in
        let listener = try RDMAListener.bind(address, on: core)
        // Unbuffered: the parent reads this line through a pipe.
        let line = "LISTENING port=\(listener.localAddress.port)\n"
        _ = line.withCString { write(1, $0, strlen($0)) }
        while true {
            let connection = try await listener.accept()
            while let message = try? await connection.recv() {
                try? await connection.send(message)
            }
            await connection.close()
        }
    }
    exit(0)
}
let host = argument(2, getenv("RDMA_ADDR").map { String(cString: $0) } ?? "10.77.0.1")
let latency = mode.hasPrefix("rtt")
let count = Int(argument(3, latency ? "5000" : "200")) ?? 1000
let size = Int(argument(4, latency ? "64" : "1048576")) ?? 64

var configuration = RDMATransport.Configuration.defaults
configuration.connectTimeout = .seconds(60)
if mode == "rtt-poll" { configuration.busyPolling = .milliseconds(100) }
if size > configuration.maximumMessageSize {
    // Eager messages of `size` bytes: receive buffers from the 1 MiB class, fewer of them.
    configuration.maximumMessageSize = size
    configuration.receiveDepth = 16
    configuration.creditReturnBatch = 4
}
let settings = configuration

let oneCore = getenv("NET_RDMA_BENCH_CORES").map { String(cString: $0) } == "1"
let runtime = try Runtime(configuration: .defaults { $0.coreCount = oneCore ? 1 : 2 })
let port = 7000 + Int(getpid() % 1000)
let address = SocketAddress(host: host, port: port)!

// Server on core 0: echo every message back from its receive buffer.
let server = try runtime.spawn(on: 0) { core in
    let listener = try RDMAListener.bind(address, on: core, configuration: settings)
    let connection = try await listener.accept()
    var echoed = 0
    while echoed < count + 100 {
        let message = try await connection.recv()
        try await connection.send(message)
        echoed += 1
    }
    await connection.close()
    await listener.close()
}

let result = try await runtime.run(on: oneCore ? 0 : 1) { core -> String in
    // The listener may not be up yet: retry the dial for a while.
    var client: RDMATransport?
    for _ in 0..<200 where client == nil {
        client = try? await RDMADialer(configuration: settings).dial(address, on: core)
        if client == nil { try await core.sleep(for: .milliseconds(50)) }
    }
    guard let client else { return "could not connect to \(address)" }
    var buffer = client.allocateBuffer(capacity: size)
    buffer.write { raw in
        for i in 0..<raw.count { raw[i] = UInt8(truncatingIfNeeded: i) }
        return size
    }
    let message = buffer.freeze()
    // Warm-up.
    for _ in 0..<100 {
        try await client.send(message)
        _ = try await client.recv()
    }
    if latency {
        var samples: [UInt64] = []
        samples.reserveCapacity(count)
        for _ in 0..<count {
            let start = Deadline.now.nanoseconds
            try await client.send(message)
            _ = try await client.recv()
            samples.append(Deadline.now.nanoseconds - start)
        }
        samples.sort()
        let p50 = Double(samples[samples.count / 2]) / 1000
        let p99 = Double(samples[samples.count * 99 / 100]) / 1000
        await client.close()
        return "rdma \(mode) size=\(size) iterations=\(count) p50_us=\(p50) p99_us=\(p99) half_rtt_p50_us=\(p50 / 2)"
    }
    // Bulk: keep a window of messages in flight; the echo comes back as they go.
    let window = max(1, settings.receiveDepth / 2)
    let start = Deadline.now.nanoseconds
    var sent = 0, received = 0
    while received < count {
        while sent < count && sent - received < window {
            try await client.send(message)
            sent += 1
        }
        _ = try await client.recv()
        received += 1
    }
    let seconds = Double(Deadline.now.nanoseconds - start) / 1e9
    let megabytes = Double(count * size) / 1e6
    await client.close()
    return "rdma bulk-echo size=\(size) messages=\(count) seconds=\(seconds) one_way_MBps=\(megabytes / seconds)"
}
print(result)
_ = try? await server.value
await runtime.stop()
