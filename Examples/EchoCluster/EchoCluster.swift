#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import NetRuntime
import Synchronization

/// `echo-cluster`: with no arguments, a 3-node cluster on 127.0.0.1, one process per node, every
/// node calling every other through the connection manager; a live table, then a summary.
@main
struct EchoCluster: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "echo-cluster",
        abstract: "An echo cluster on swift-net: nodes that serve Echo and call each other.",
        subcommands: [Launch.self, Node.self],
        defaultSubcommand: Launch.self
    )
}

/// Starts `--nodes` node processes and watches them.
struct Launch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run a local cluster (the default).")

    @Option(help: "Seconds to run.") var duration = 30
    @Option(help: "Nodes (processes).") var nodes = 3
    @Option(help: "Transport: tcp or rdma (rdma needs --host set to an RDMA device's address).") var transport: ClusterTransport = .tcp
    @Option(help: "Address the nodes listen on.") var host = "127.0.0.1"
    @Option(help: "Payload bytes per call.") var payload = 64

    func run() async throws {
        if transport == .rdma, host == "127.0.0.1" || host == "::1" {
            throw ValidationError("--transport rdma needs --host set to an RDMA device's address (rdma_cm cannot route loopback)")
        }
        guard nodes >= 2 else { throw ValidationError("--nodes must be at least 2") }
        let ports = try (0..<nodes).map { _ in try freePort(host) }
        let addresses = ports.map { host.contains(":") ? "[\(host)]:\($0)" : "\(host):\($0)" }
        let table = Table()
        var children: [Child] = []
        for i in 0..<nodes {
            let peers = addresses.enumerated().filter { $0.offset != i }.map(\.element).joined(separator: ",")
            let child = try Child.spawn([
                CommandLine.arguments[0], "node", "--listen", addresses[i], "--peers", peers,
                "--payload", "\(payload)", "--name", "n\(i)", "--transport", transport.rawValue,
            ])
            children.append(child)
            child.readLines { line in table.ingest(line) }
        }
        print("echo-cluster: \(nodes) nodes over \(transport.rawValue) on \(addresses.joined(separator: " ")), \(duration) s (pids \(children.map { "\($0.pid)" }.joined(separator: " ")))")
        for second in 1...max(duration, 1) {
            try await Task.sleep(for: .seconds(1))
            print(table.render(title: "t=\(second)s"))
            fflush(nil)
        }
        for child in children { kill(child.pid, SIGTERM) }
        var statuses: [Int32] = []
        for child in children { statuses.append(await child.wait()) }
        try await Task.sleep(for: .milliseconds(200))  // the last lines
        let (summary, ok) = table.summary(expectedPairs: nodes * (nodes - 1))
        print(summary)
        if !ok || statuses.contains(where: { $0 != 0 }) {
            print("echo-cluster: FAILED (node exit statuses \(statuses))")
            throw ExitCode(1)
        }
        print("echo-cluster: OK: every node completed calls to every peer")
    }
}

/// The latest STATS line per (node, peer).
final class Table: Sendable {
    struct Row {
        var calls = 0, errors = 0, rate = 0, p50 = 0, p99 = 0, reconnects = 0
        var lastError = ""
    }
    private let rows = Mutex([String: Row]())

    func ingest(_ line: String) {
        guard line.hasPrefix("STATS ") || line.hasPrefix("FINAL ") else {
            if !line.hasPrefix("LISTENING") { print(line) }
            return
        }
        var fields: [String: String] = [:]
        for part in line.split(separator: " ").dropFirst() {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
        }
        guard let node = fields["node"], let peer = fields["peer"] else { return }
        rows.withLock { rows in
            var row = rows["\(node) -> \(peer)"] ?? Row()
            row.calls = Int(fields["calls"] ?? "") ?? row.calls
            row.errors = Int(fields["errors"] ?? "") ?? row.errors
            row.reconnects = Int(fields["reconnects"] ?? "") ?? row.reconnects
            if line.hasPrefix("STATS ") {
                row.rate = Int(fields["rate"] ?? "") ?? 0
                row.p50 = Int(fields["p50_us"] ?? "") ?? 0
                row.p99 = Int(fields["p99_us"] ?? "") ?? 0
                row.lastError = fields["last_error"] ?? ""
            }
            rows["\(node) -> \(peer)"] = row
        }
    }

    func render(title: String) -> String {
        let snapshot = rows.withLock { $0 }
        var out = "\(title)\n" + pad("node -> peer", 30) + pad("calls/s", 10) + pad("p50 µs", 9) + pad("p99 µs", 9)
            + pad("calls", 11) + pad("errors", 8) + pad("reconn.", 8) + "last error\n"
        for key in snapshot.keys.sorted() {
            let r = snapshot[key]!
            out += pad(key, 30) + pad("\(r.rate)", 10) + pad("\(r.p50)", 9) + pad("\(r.p99)", 9) + pad("\(r.calls)", 11)
                + pad("\(r.errors)", 8) + pad("\(r.reconnects)", 8) + r.lastError + "\n"
        }
        return out
    }

    func summary(expectedPairs: Int) -> (String, Bool) {
        let snapshot = rows.withLock { $0 }
        var out = "summary:\n"
        var ok = snapshot.count == expectedPairs
        for key in snapshot.keys.sorted() {
            let r = snapshot[key]!
            out += "  \(key): \(r.calls) calls, \(r.errors) errors, \(r.reconnects) reconnects\n"
            if r.calls == 0 { ok = false }
        }
        if snapshot.count != expectedPairs { out += "  only \(snapshot.count) of \(expectedPairs) node/peer pairs reported\n" }
        return (out, ok)
    }

    private func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count) }
}

/// A node process whose standard output we read.
struct Child: Sendable {
    let pid: pid_t
    let output: Int32

    static func spawn(_ arguments: [String]) throws -> Child {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ValidationError("pipe failed") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        let rc = posix_spawn(&pid, arguments[0], &actions, nil, argv, environ)
        close(fds[1])
        guard rc == 0 else { throw ValidationError("could not start a node: \(String(cString: strerror(rc)))") }
        return Child(pid: pid, output: fds[0])
    }

    /// Hands every line of the child's output to `body`, on a thread of its own (reads block).
    func readLines(_ body: @escaping @Sendable (String) -> Void) {
        let fd = output
        Thread.detach {
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                pending += buffer[..<n]
                while let newline = pending.firstIndex(of: 10) {
                    body(String(decoding: pending[..<newline], as: UTF8.self))
                    pending.removeSubrange(...newline)
                }
            }
            close(fd)
        }
    }

    /// Waits for the child to exit (polling: no thread blocks) and returns its status.
    func wait() async -> Int32 {
        var status: Int32 = 0
        for _ in 0..<200 {
            if waitpid(pid, &status, WNOHANG) == pid { return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f) }
            try? await Task.sleep(for: .milliseconds(50))
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
        return 137
    }
}

/// A tiny detached POSIX thread.
enum Thread {
    static func detach(_ body: @escaping @Sendable () -> Void) {
        final class Box: Sendable { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        pthread_create(&thread, nil, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        pthread_detach(thread)
    }
}

/// A port free right now on `host` (bound, read, closed).
func freePort(_ host: String) throws -> Int {
    guard let address = SocketAddress(host: host, port: 0) else { throw ValidationError("bad --host \(host)") }
    let (fd, bound) = try Socket.listenTCP(on: address)
    Socket.closeNow(fd)
    return bound.port
}
