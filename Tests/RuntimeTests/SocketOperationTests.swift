#if canImport(Glibc)
import Glibc
#endif
import NetRuntime
import NetTestSupport
import Testing

@Suite("Socket operations", .timeLimit(.minutes(1)))
struct SocketOperationTests {
    @Test("Accept, connect, send and recv carry bytes both ways", arguments: ["127.0.0.1", "::1"])
    func echo(host: String) async throws {
        try await withRuntime { runtime in
            let echoed = try await runtime.run(on: 0) { core in
                let (listener, address) = try Socket.listenTCP(on: SocketAddress(host: host, port: 0)!)
                defer { Socket.closeNow(listener) }
                async let server: Void = {
                    let (fd, peer) = try await core.accept(listener)
                    #expect(peer.host == SocketAddress(host: host, port: 0)!.host)
                    let buffer = RawBuffer(count: 64)
                    let n = try await core.recv(fd, into: buffer.bytes)
                    try await core.sendAll(fd, UnsafeRawBufferPointer(rebasing: buffer.readable[..<n]))
                    try await core.close(fd)
                }()
                let client = try await core.connectTCP(to: address, timeout: .seconds(5))
                try Socket.setNoDelay(client)
                let message = Array("hello, core".utf8)
                let out = RawBuffer(message)
                try await core.sendAll(client, out.readable)
                let reply = RawBuffer(count: 64)
                let n = try await core.recv(client, into: reply.bytes)
                try await server
                // The server closed: the next recv reads end of stream.
                let eof = try await core.recv(client, into: reply.bytes)
                try await core.close(client)
                return (reply.prefix(n) == message, eof)
            }
            #expect(echoed.0)
            #expect(echoed.1 == 0)
        }
    }

    @Test("Vectored sends deliver every byte in order, through short writes")
    func vectoredLargeSend() async throws {
        try await withRuntime { runtime in
            let ok = try await runtime.run(on: 0) { core in
                let (a, b) = try Socket.pair()
                // Small buffers force the kernel to take the send in many short pieces.
                try Socket.setOption(a, SOL_SOCKET, SO_SNDBUF, 4096)
                try Socket.setOption(b, SOL_SOCKET, SO_RCVBUF, 4096)
                let chunk = 64 * 1024
                let chunks = 32
                let payload = (0..<(chunk * chunks)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
                async let received: [UInt8] = {
                    var out: [UInt8] = []
                    out.reserveCapacity(payload.count)
                    let buffer = RawBuffer(count: 3000)
                    while out.count < payload.count {
                        let n = try await core.recv(b, into: buffer.bytes)
                        if n == 0 { break }
                        out += buffer.prefix(n)
                    }
                    return out
                }()
                let source = RawBuffer(payload)
                let vectors = UnsafeMutableBufferPointer<iovec>.allocate(capacity: chunks)
                defer { vectors.deallocate() }
                for i in 0..<chunks {
                    vectors[i] = iovec(iov_base: source.bytes.baseAddress! + i * chunk, iov_len: chunk)
                }
                try await core.sendAll(a, vectors: vectors)
                let got = try await received
                try await core.close(a)
                try await core.close(b)
                return got == payload
            }
            #expect(ok)
        }
    }

    @Test("A poll for both directions completes when the socket becomes writable alone")
    func pollEitherDirection() async throws {
        try await withRuntime { runtime in
            let writable = try await runtime.run(on: 0) { core in
                let (a, b) = try Socket.pair()
                try Socket.setOption(a, SOL_SOCKET, SO_SNDBUF, 4096)
                let block = RawBuffer([UInt8](repeating: 7, count: 1000))
                while try core.sendNow(a, block.readable) > 0 {}  // full: not writable, nothing to read
                let poll = try core.spawn { try await core.poll(a, events: Int16(POLLIN | POLLOUT)) }
                await Task.yield()
                // The peer reads everything: `a` becomes writable, and still has nothing to read.
                let buffer = RawBuffer(count: 64 * 1024)
                while recv(b, buffer.bytes.baseAddress, buffer.bytes.count, Int32(MSG_DONTWAIT)) > 0 {}
                let events = try await poll.value
                try await core.close(a)
                try await core.close(b)
                return events & Int16(POLLOUT) != 0
            }
            #expect(writable)
        }
    }

    @Test("sendNow takes what the socket has room for, returns 0 when it is full, and throws EPIPE once the peer has gone")
    func sendNow() async throws {
        try await withRuntime { runtime in
            let (first, full, afterClose, received) = try await runtime.run(on: 0) { core in
                let (a, b) = try Socket.pair()
                try Socket.setOption(a, SOL_SOCKET, SO_SNDBUF, 4096)
                let block = RawBuffer((0..<1000).map { UInt8(truncatingIfNeeded: $0) })
                let first = try core.sendNow(a, block.readable)
                var total = first
                var full = false
                for _ in 0..<10_000 {
                    let n = try core.sendNow(a, block.readable)
                    if n == 0 { full = true; break }
                    total += n
                }
                // Everything taken arrives, in order.
                let buffer = RawBuffer(count: 64 * 1024)
                var received = 0
                while received < total {
                    received += try await core.recv(b, into: buffer.bytes)
                }
                try await core.close(b)
                var afterClose: IOError?
                do {
                    // The first send after the peer's close may still succeed; a later one cannot.
                    for _ in 0..<3 { _ = try core.sendNow(a, block.readable) }
                } catch {
                    afterClose = error as? IOError
                }
                try await core.close(a)
                return (first, full, afterClose, received == total)
            }
            #expect(first == 1000)
            #expect(full)
            #expect(afterClose?.code == EPIPE || afterClose?.code == ECONNRESET)
            #expect(received)
        }
    }

    @Test("Vectored sends of more vectors than sendmsg takes (1,024) go out whole, as short writes")
    func moreVectorsThanTheKernelTakes() async throws {
        try await withRuntime { runtime in
            let (nowSent, ok) = try await runtime.run(on: 0) { core in
                let (a, b) = try Socket.pair()
                let count = 1_500
                let payload = (0..<(count * 10)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }
                let source = RawBuffer(payload)
                let vectors = UnsafeMutableBufferPointer<iovec>.allocate(capacity: count)
                defer { vectors.deallocate() }
                for i in 0..<count { vectors[i] = iovec(iov_base: source.bytes.baseAddress! + i * 10, iov_len: 10) }
                // At once: at most the first 1,024 vectors, reported as a short write.
                let nowSent = try core.sendNow(a, vectors: vectors)
                var rest = vectors
                IOVectors.advance(&rest, by: nowSent)
                // Through the ring: everything else.
                try await core.sendAll(a, vectors: rest)
                var out: [UInt8] = []
                let buffer = RawBuffer(count: 64 * 1024)
                while out.count < payload.count {
                    let n = try await core.recv(b, into: buffer.bytes)
                    if n == 0 { break }
                    out += buffer.prefix(n)
                }
                try await core.close(a)
                try await core.close(b)
                return (nowSent, out == payload)
            }
            #expect(nowSent == 10_240)
            #expect(ok)
        }
    }

    @Test("IOVectors.advance drops sent vectors and trims a partly sent one")
    func advanceVectors() {
        var storage = [UInt8](repeating: 0, count: 30)
        storage.withUnsafeMutableBytes { raw in
            var vectors = [
                iovec(iov_base: raw.baseAddress!, iov_len: 10),
                iovec(iov_base: raw.baseAddress! + 10, iov_len: 0),
                iovec(iov_base: raw.baseAddress! + 10, iov_len: 20),
            ]
            vectors.withUnsafeMutableBufferPointer { buffer in
                var rest = buffer
                IOVectors.advance(&rest, by: 13)
                #expect(rest.count == 1)
                #expect(rest[0].iov_base == raw.baseAddress! + 13)
                #expect(rest[0].iov_len == 17)
                IOVectors.advance(&rest, by: 17)
                #expect(rest.isEmpty)
            }
        }
    }

    @Test("An operation on a descriptor that is not open fails with EBADF")
    func badDescriptor() async throws {
        try await withRuntime { runtime in
            let error = try await runtime.run(on: 0) { core in
                // Far above RLIMIT_NOFILE, so no test running beside this one can own it.
                let buffer = RawBuffer(count: 8)
                return await caught { _ = try await core.recv(1 << 24, into: buffer.bytes) }
            }
            #expect((error as? IOError)?.code == EBADF)
        }
    }

    @Test("A peer reset ends a pending recv with a typed reset error")
    func peerReset() async throws {
        try await withRuntime { runtime in
            let error = try await runtime.run(on: 0) { core in
                let (listener, address) = try Socket.listenTCP(on: SocketAddress(host: "127.0.0.1", port: 0)!)
                defer { Socket.closeNow(listener) }
                let client = try await core.connectTCP(to: address)
                let (server, _) = try await core.accept(listener)
                async let failure = {
                    let buffer = RawBuffer(count: 8)
                    return await caught { _ = try await core.recv(client, into: buffer.bytes) }
                }()
                // SO_LINGER with a zero timeout makes close send a reset.
                var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                setsockopt(server, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
                try await core.close(server)
                let error = await failure
                try await core.close(client)
                return error
            }
            #expect((error as? IOError)?.isConnectionReset == true)
        }
    }

    @Test("Connect to a listener that never answers fails by its timeout")
    func connectTimeout() async throws {
        try await withRuntime { runtime in
            let outcome = try await runtime.run(on: 0) { core in
                // Backlog 0 holds one connection; later SYNs are dropped while it stays unaccepted.
                let (listener, address) = try Socket.listenTCP(on: SocketAddress(host: "127.0.0.1", port: 0)!, backlog: 0)
                defer { Socket.closeNow(listener) }
                var connected: [Int32] = []
                var timedOut = false
                var other: (any Error)?
                for _ in 0..<8 where !timedOut {
                    do {
                        connected.append(try await core.connectTCP(to: address, timeout: .milliseconds(300)))
                    } catch let error as IOError where error.isTimeout {
                        timedOut = true
                    } catch {
                        other = error
                        break
                    }
                }
                for fd in connected { try await core.close(fd) }
                return (timedOut, other.map { "\($0)" })
            }
            #expect(outcome.0)
            #expect(outcome.1 == nil)
        }
    }

    @Test("Readiness of a foreign descriptor (a pipe) is awaited on the core")
    func readiness() async throws {
        try await withRuntime { runtime in
            var fds: [Int32] = [0, 0]
            #expect(pipe(&fds) == 0)
            let (readEnd, writeEnd) = (fds[0], fds[1])
            defer { close(readEnd); close(writeEnd) }
            let waiter = try runtime.spawn(on: 0) { core in
                try await core.waitReadable(readEnd)
                return true
            }
            try await waitForPending(runtime, atLeast: 1)
            #expect(write(writeEnd, "x", 1) == 1)
            #expect(try await waiter.value)
            let writable = try await runtime.run(on: 0) { core in try await core.poll(writeEnd, events: Int16(POLLOUT)) }
            #expect(writable & Int16(POLLOUT) != 0)
        }
    }
}
