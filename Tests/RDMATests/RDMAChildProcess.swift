#if canImport(Glibc)
import Glibc
#endif
import NetTestSupport
import Synchronization

/// A child process running the test helper `NetRDMAChild` (built beside the test bundle), for
/// what a test cannot do in its own process: be killed, or run with other limits. posix_spawn,
/// not Foundation's Process (which crashed here).
final class ChildProcess: Sendable {
    let pid: pid_t
    /// The read end of the child's standard output.
    private let output: Int32
    /// The port it listens on (servers).
    let port: Int
    private let reaped = Mutex<Int32?>(nil)

    private init(pid: pid_t, output: Int32, port: Int) {
        self.pid = pid
        self.output = output
        self.port = port
    }

    deinit {
        close(output)
    }

    /// The helper's path.
    static var helper: String { builtProgram("NetRDMAChild") }

    /// Starts `argv` (argv[0] is the program's path) with its standard output to a pipe.
    static func spawn(_ argv: [String], port: Int = 0) throws -> ChildProcess {
        let child = try spawnProcess(argv)
        return ChildProcess(pid: child.pid, output: child.output, port: port)
    }

    /// An echo server on rxe0's address, once it listens.
    static func server() throws -> ChildProcess {
        let child = try spawn([helper, "serve", RDMATestEnvironment.address])
        // Its first line says where it listens (read before any core runs: a short blocking read).
        let line = child.readLine()
        guard let port = line.split(separator: "=").last.flatMap({ Int($0.filter(\.isNumber)) }) else {
            child.kill()
            throw ChildError("the server said \(line.debugDescription)")
        }
        return ChildProcess(taking: child, port: port)
    }

    private convenience init(taking child: ChildProcess, port: Int) {
        self.init(pid: child.pid, output: dup(child.output), port: port)
    }

    /// One line of its output (blocking), without the newline; what there is at end of file.
    func readLine() -> String {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while read(output, &byte, 1) == 1, byte != UInt8(ascii: "\n") { bytes.append(byte) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Reads its output to the end and waits for it: (output, exit status).
    func finish() -> (String, Int32) {
        (readToEnd(dup(output)), reap())
    }

    /// Kills and reaps the child, once.
    func kill() {
        if reaped.withLock({ $0 }) == nil { _ = Glibc.kill(pid, SIGKILL) }
        _ = reap()
    }

    private func reap() -> Int32 {
        reaped.withLock { status in
            if let status { return status }
            let exit = waitForExit(pid)
            status = exit
            return exit
        }
    }
}

/// A child that did not behave.
struct ChildError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
