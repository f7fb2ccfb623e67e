// net-runtime-child: scenarios the runtime tests run in a child process, because they change or
// inspect process-wide state (a seccomp filter, the open descriptor table). Prints `key=value`
// lines on stdout for the parent test to check; logs go to stderr.
#if canImport(Glibc)
import Glibc
#endif
import CSeccomp
import Logging
import NetRuntime

LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }

func openDescriptors() -> Set<String> {
    guard let dir = opendir("/proc/self/fd") else { return [] }
    defer { closedir(dir) }
    var names = Set<String>()
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        if name != "." && name != ".." { names.insert(name) }
    }
    // The descriptor opendir itself holds is not the runtime's.
    names.remove(String(dirfd(dir)))
    return names
}

/// A TCP echo over 127.0.0.1 on core 0; returns whether the bytes came back.
func echoOnce(_ runtime: Runtime) async throws -> Bool {
    try await runtime.run(on: 0) { core in
        let (listener, address) = try Socket.listenTCP(on: SocketAddress(host: "127.0.0.1", port: 0)!)
        try core.adopt(listener)
        async let served: Void = {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 16)
            defer { buffer.deallocate() }
            let (fd, _) = try await core.accept(listener)
            let n = try await core.recv(fd, into: buffer)
            try await core.sendAll(fd, UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            try await core.close(fd)
        }()
        let client = try await core.connectTCP(to: address, timeout: .seconds(5))
        let message: [UInt8] = Array("seccomp echo".utf8)
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 16)
        defer { out.deallocate() }
        out.copyBytes(from: message)
        try await core.sendAll(client, UnsafeRawBufferPointer(rebasing: out[..<message.count]))
        try await served
        let reply = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 16)
        defer { reply.deallocate() }
        let n = try await core.recv(client, into: reply)
        try await core.close(client)
        try await core.close(listener)
        return Array(reply[..<n]) == message
    }
}

let scenario = CommandLine.arguments.dropFirst().first ?? ""
switch scenario {
case "seccomp-echo":
    let rc = cseccomp_deny_io_uring_setup()
    print("seccomp=\(rc == 0 ? "installed" : "failed \(rc)")")
    unsetenv("NET_RUNTIME_BACKEND")
    let runtime = try Runtime(configuration: .defaults { $0.coreCount = 1 })
    print("backend=\(runtime.backendName)")
    print("echo=\(try await echoOnce(runtime) ? "ok" : "wrong")")
    runtime.shutdown()

case "shutdown-fds", "stop-fds":
    // Work in flight on two cores at shutdown: an accept loop, connections with pending recvs,
    // sleepers. A graceful shutdown with a short grace period must leave no descriptor open.
    // Top-level code runs on the main actor, which on Linux is Dispatch's main queue: the first
    // resumption there opens Dispatch's own epoll, eventfd and timerfd. They are the process's,
    // not the runtime's, so one hop off and back comes before the baseline.
    await Task.detached {}.value
    let before = openDescriptors()
    let runtime = try Runtime(configuration: .defaults {
        $0.coreCount = 2
        $0.shutdownGracePeriod = .milliseconds(50)
        $0.cancellationGracePeriod = .milliseconds(500)
    })
    let (listener, address) = try Socket.listenTCP(on: SocketAddress(host: "127.0.0.1", port: 0)!)
    try await runtime.run(on: 0) { core in try core.adopt(listener) }
    try runtime.spawn(on: 0) { core in
        try await withThrowingTaskGroup(of: Void.self) { group in
            while true {
                let (fd, _) = try await core.accept(listener)
                group.addTask {
                    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 16)
                    defer { buffer.deallocate() }
                    _ = try await core.recv(fd, into: buffer)  // never answered
                }
            }
        }
    }
    for i in 0..<8 {
        try runtime.spawn(on: 1) { core in
            let fd = try await core.connectTCP(to: address, timeout: .seconds(5))
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 16)
            defer { buffer.deallocate() }
            do {
                _ = try await core.recv(fd, into: buffer)  // the server never writes
            } catch {
                // Half the tasks close their socket on the way out, as a connection does when
                // its receive ends: the stopping core must still close it.
                if i % 2 == 0 { try? await core.close(fd) }
                throw error
            }
        }
    }
    try runtime.spawn(on: 1) { core in try await core.sleep(for: .seconds(3600)) }
    while try await runtime.run(on: 0, { core in core.statistics.pendingOperations }) < 9 {}
    let during = openDescriptors().count
    if scenario == "stop-fds" {
        await runtime.stop()  // at once: operations in flight end with an error, no grace period
    } else {
        runtime.beginGracefulShutdown()
        await runtime.run()
    }
    let after = openDescriptors()
    print("during=\(during)")
    let leaked = after.subtracting(before).sorted().map { fd -> String in
        var target = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/self/fd/\(fd)", &target, 255)
        return n > 0 ? "\(fd):\(String(decoding: target[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))" : fd
    }
    // The runtime never opens a timerfd (its timers are the wait's timeout); Dispatch may open one
    // at any time for its own timers, so those are not counted.
    print("leaked=\(leaked.filter { !$0.hasSuffix("[timerfd]") }.joined(separator: ","))")
    let refused: Bool
    do { _ = try await runtime.run(on: 0) { core in core.index }; refused = false } catch { refused = (error as? RuntimeError)?.isShutDown == true }
    print("refusedAfter=\(refused)")

default:
    print("unknown scenario '\(scenario)'")
    exit(2)
}
