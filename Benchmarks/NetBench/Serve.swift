#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import NetRuntime
import NetRPC
import NetTCP

/// Serves an echo on every core of this process until killed and prints `LISTENING port=N`.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run an echo server for `run`.")

    @Option(help: "Layer: runtime (raw sockets), transport (framed messages) or rpc (unary echo calls).") var layer: Layer = .runtime
    @Option(help: "Transport under the transport layer: tcp.") var transport: TransportKind = .tcp
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port; 0 picks one.") var port = 0

    func run() async throws {
        let runtime = try Runtime()
        defer { runtime.shutdown() }
        guard let address = SocketAddress(host: host, port: port) else { throw ValidationError("bad --host \(host)") }
        if layer == .rpc {
            let group = try TCPListenerGroup.bind(address, cores: runtime.cores.count)
            let server = RPCServer(services: [BenchService()], configuration: .defaults { $0.keepaliveInterval = nil })
            print("LISTENING port=\(group.address.port)")
            fflush(nil)
            _ = try await runtime.runOnEveryCore { core in try await server.serve(try group.listener(on: core)) }
            return
        }
        if layer == .transport {
            let group = try TCPListenerGroup.bind(address, cores: runtime.cores.count)
            print("LISTENING port=\(group.address.port)")
            fflush(nil)
            _ = try await runtime.runOnEveryCore { core in try await TransportEcho.serve(group, on: core) }
            return
        }
        // One listener per core on one port (SO_REUSEPORT): the kernel spreads connections.
        let first = try Socket.listenTCP(on: address, reusePort: true)
        var listeners = [first.fd]
        for _ in 1..<runtime.cores.count {
            listeners.append(try Socket.listenTCP(on: first.address, reusePort: true).fd)
        }
        print("LISTENING port=\(first.address.port)")
        fflush(nil)
        let fds = listeners
        _ = try await runtime.runOnEveryCore { core in
            try await RuntimeEcho.serve(listener: fds[core.index], on: core)
        }
    }
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
                let n = try await core.recv(fd, into: buffer.bytes, pollFirst: true)
                if n == 0 { break }
                try await core.sendAll(fd, UnsafeRawBufferPointer(rebasing: buffer.bytes[..<n]))
            }
        } catch {}
        try? await core.close(fd)
    }
}
