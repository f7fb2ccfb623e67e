#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import NetRDMA
import NetRuntime
import NetRPC
import NetTCP

/// Serves an echo until killed and prints `LISTENING port=N`: over TCP on every core of this
/// process (one listener per core on one port), over RDMA on one core (rdma_cm has no
/// `SO_REUSEPORT`: one listener per port).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run an echo server for `run`.")

    @Option(help: "Layer: runtime (raw sockets), transport (framed messages) or rpc (unary echo calls).") var layer: Layer = .runtime
    @Option(help: "Transport under the transport and rpc layers: tcp or rdma.") var transport: TransportKind = .tcp
    @Option(help: "Address to listen on (default 127.0.0.1; for rdma an RDMA device's address, default $RDMA_ADDR).") var host: String?
    @Option(help: "Port; 0 picks one.") var port = 0
    @Option(help: "How the rpc layer runs its echo handler: inline (registerInline, in the read loop) or task (register, on a worker task).") var handler: HandlerKind = .inline
    @Option(help: "How the transport layer's echo takes messages: loop (a reader task per connection awaiting recv) or handler (startReceiving: handed over from the driver, RDMA's straight from the completion queue's poll).") var receive: ReceiveKind = .loop
    @OptionGroup var rdma: RDMAOptions
    @OptionGroup var runtimeOptions: RuntimeOptions

    func run() async throws {
        if transport == .rdma {
            guard layer != .runtime else { throw ValidationError("--layer runtime is raw TCP sockets: use --transport tcp") }
            guard let address = SocketAddress(host: try RDMAOptions.host(host), port: port) else { throw ValidationError("bad --host \(host ?? "")") }
            return try await serveRDMA(on: address)
        }
        let runtime = try Runtime(configuration: runtimeOptions.configuration())
        defer { runtime.shutdown() }
        let host = self.host ?? "127.0.0.1"
        guard let address = SocketAddress(host: host, port: port) else { throw ValidationError("bad --host \(host)") }
        if layer == .rpc {
            let group = try TCPListenerGroup.bind(address, cores: runtime.cores.count)
            let server = RPCServer(services: [BenchService(handler: handler)], configuration: Self.rpcConfiguration)
            listening(group.address.port)
            _ = try await runtime.runOnEveryCore { core in try await server.serve(try group.listener(on: core)) }
            return
        }
        if layer == .transport {
            let group = try TCPListenerGroup.bind(address, cores: runtime.cores.count)
            listening(group.address.port)
            let receive = self.receive
            _ = try await runtime.runOnEveryCore { core in
                try await TransportEcho.serve(try group.listener(on: core), on: core) { connection in
                    if receive == .handler { DirectLoops.echoFromHandler(connection) } else { await DirectLoops.echo(connection) }
                }
            }
            return
        }
        // One listener per core on one port (SO_REUSEPORT): the kernel spreads connections.
        let first = try Socket.listenTCP(on: address, reusePort: true)
        var listeners = [first.fd]
        for _ in 1..<runtime.cores.count {
            listeners.append(try Socket.listenTCP(on: first.address, reusePort: true).fd)
        }
        listening(first.address.port)
        let fds = listeners
        _ = try await runtime.runOnEveryCore { core in
            try await RuntimeEcho.serve(listener: fds[core.index], on: core)
        }
    }

    /// The transport or RPC echo over RDMA: one listener, on a runtime of one core.
    private func serveRDMA(on address: SocketAddress) async throws {
        let runtime = try Runtime(configuration: runtimeOptions.configuration(coreCount: 1))
        defer { runtime.shutdown() }
        let (layer, configuration, receive) = (self.layer, rdma.configuration, self.receive)
        try await runtime.run(on: 0) { core in
            let listener = try RDMAListener.bind(address, on: core, configuration: configuration)
            listening(listener.localAddress.port)
            if layer == .rpc {
                try await RPCServer(services: [BenchService(handler: handler)], configuration: Self.rpcConfiguration).serve(listener)
            } else {
                try await TransportEcho.serve(listener, on: core) { connection in
                    if receive == .handler { DirectLoops.echoFromHandler(connection) } else { await DirectLoops.echo(connection) }
                }
            }
        }
    }

    /// The benchmark server's RPC settings: no keepalive pings in the measurements.
    static var rpcConfiguration: RPCConfiguration { .defaults { $0.keepaliveInterval = nil } }
}

/// How the transport layer's echo server takes its messages.
enum ReceiveKind: String, ExpressibleByArgument, CaseIterable {
    /// A reader task per connection, awaiting `recv` (``DirectLoops/echo(_:)-(RDMATransport)``).
    case loop
    /// `startReceiving`: a handler called by the driver, no task per message
    /// (``DirectLoops/echoFromHandler(_:)``).
    case handler
}

/// Prints the line a parent process waits for (stdout is a pipe there: flushed at once).
func listening(_ port: Int) {
    print("LISTENING port=\(port)")
    fflush(nil)
}

/// The raw-socket echo: bytes go back as they come.
enum RuntimeEcho {
    static func serve(listener: Int32, on core: isolated Core) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            while true {
                let (fd, _) = try await core.accept(listener)
                try Socket.setNoDelay(fd)
                group.addTask {
                    await echo(fd, on: core)
                }
            }
        }
    }

    @concurrent
    static func echo(_ fd: Int32, on core: Core) async {
        let buffer = BenchBuffer(count: 64 * 1024)
        do {
            while true {
                let n = try await core.recv(fd, into: buffer.bytes, pollFirst: true, cancellable: false)
                if n == 0 { break }
                let reply = UnsafeRawBufferPointer(rebasing: buffer.bytes[..<n])
                let now = try core.sendNow(fd, reply)
                if now < n { try await core.sendAll(fd, UnsafeRawBufferPointer(rebasing: reply[now...])) }
            }
        } catch {}
        try? await core.close(fd)
    }
}
