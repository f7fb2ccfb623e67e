#if canImport(Glibc)
public import Glibc
#endif

/// Why a program could not be started.
public struct SpawnFailed: Error, CustomStringConvertible {
    /// The errno value (or posix_spawn's result).
    public let code: Int32
    /// What failed.
    public let operation: String

    public var description: String { "\(operation): \(String(cString: strerror(code))) (errno \(code))" }
}

/// Starts `arguments` (the first is the program's path) with its standard output, and its standard
/// error too when `capturingErrors`, on a pipe; returns its pid and the pipe's read end.
///
/// posix_spawn, not Foundation's Process (which crashed here while other suites ran). Both pipe
/// ends are close-on-exec (dup2 clears it on the child's side), so a program that a parallel test
/// spawns cannot hold our write end open and delay our end of file.
public func spawnProcess(_ arguments: [String], capturingErrors: Bool = false) throws(SpawnFailed) -> (pid: pid_t, output: Int32) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw SpawnFailed(code: errno, operation: "pipe") }
    _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
    _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    if capturingErrors { posix_spawn_file_actions_adddup2(&actions, fds[1], 2) }
    var pid: pid_t = 0
    let argv = arguments.map { strdup($0) } + [nil]
    defer { for argument in argv { free(argument) } }
    let rc = posix_spawn(&pid, arguments[0], &actions, nil, argv, environ)
    close(fds[1])
    guard rc == 0 else {
        close(fds[0])
        throw SpawnFailed(code: rc, operation: "posix_spawn \(arguments[0])")
    }
    return (pid, fds[0])
}

/// Reads `fd` to its end (blocking), then closes it.
public func readToEnd(_ fd: Int32) -> String {
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let got = read(fd, &chunk, chunk.count)
        if got > 0 { output += chunk[..<got] } else if got == 0 || errno != EINTR { break }
    }
    close(fd)
    return String(decoding: output, as: UTF8.self)
}

/// Waits for `pid` and returns its exit status (128 + the signal when a signal ended it).
public func waitForExit(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    // WIFEXITED / WEXITSTATUS by hand: the macros do not import.
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
}

/// The path of a program built beside the test bundle (a test helper target).
public func builtProgram(_ name: String) -> String {
    var path = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &path, 4095)
    let exe = String(decoding: path[..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)]) + "/" + name
}

/// Runs `scenario` of the helper program `name` (built beside the test bundle) and returns its
/// `key=value` lines (letters and digits in the key), its whole output (stdout and stderr, with
/// the logs) and its exit status. Uses posix_spawn directly: Foundation's Process crashed here
/// while other suites ran.
public func runChildProgram(_ name: String, _ scenario: String) throws -> (values: [String: String], output: String, status: Int32) {
    let child = try spawnProcess([builtProgram(name), scenario], capturingErrors: true)
    let text = readToEnd(child.output)
    let status = waitForExit(child.pid)
    var values: [String: String] = [:]
    for line in text.split(separator: "\n") {
        guard let eq = line.firstIndex(of: "=") else { continue }
        let key = line[..<eq]
        if !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber }) {
            values[String(key)] = String(line[line.index(after: eq)...])
        }
    }
    return (values, text, status)
}
