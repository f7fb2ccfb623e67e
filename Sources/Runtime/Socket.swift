#if canImport(Glibc)
import Glibc
#endif
import CURing

/// The synchronous socket calls that never block: creating, binding, listening, options and
/// addresses. Everything that waits (accept, connect, recv, send) is an operation on a ``Core``.
///
/// Sockets are created non-blocking and close-on-exec, as both runtime backends expect.
public enum Socket {
    /// Creates a TCP socket for `family` (`AF_INET` or `AF_INET6`).
    public static func makeTCP(family: Int32) throws(IOError) -> Int32 {
        let fd = Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw IOError(code: errno, operation: .socket) }
        return fd
    }

    /// Creates a TCP socket bound to `address` and listening, with `SO_REUSEADDR` and, when asked,
    /// `SO_REUSEPORT` (so one listener per core can share a port). Returns the socket and the
    /// address it is bound to (with the port the kernel picked when `address.port` is 0).
    public static func listenTCP(
        on address: SocketAddress, backlog: Int32 = 1024, reusePort: Bool = false
    ) throws(IOError) -> (fd: Int32, address: SocketAddress) {
        let fd = try makeTCP(family: address.family)
        do throws(IOError) {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            if reusePort { try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1) }
            if address.family == AF_INET6 { try setOption(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) }
            let rc = address.withSockAddr { Glibc.bind(fd, $0, $1) }
            guard rc == 0 else { throw IOError(code: errno, operation: .bind) }
            guard Glibc.listen(fd, backlog) == 0 else { throw IOError(code: errno, operation: .listen) }
            return (fd, try localAddress(of: fd))
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Sets an integer socket option.
    public static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) throws(IOError) {
        var value = value
        guard setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw IOError(code: errno, operation: .setsockopt)
        }
    }

    /// Reads an integer socket option.
    public static func option(_ fd: Int32, _ level: Int32, _ name: Int32) throws(IOError) -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, level, name, &value, &length) == 0 else {
            throw IOError(code: errno, operation: .setsockopt)
        }
        return value
    }

    /// Turns Nagle's algorithm off (`TCP_NODELAY`).
    public static func setNoDelay(_ fd: Int32, _ on: Bool = true) throws(IOError) {
        try setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, on ? 1 : 0)
    }

    /// The address a socket is bound to.
    public static func localAddress(of fd: Int32) throws(IOError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutableBytes(of: &storage) {
            getsockname(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length)
        }
        guard rc == 0 else { throw IOError(code: errno, operation: .getsockname) }
        return SocketAddress(storage: storage, length: length)
    }

    /// The address of a connected socket's peer.
    public static func peerAddress(of fd: Int32) throws(IOError) -> SocketAddress {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let rc = withUnsafeMutableBytes(of: &storage) {
            getpeername(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &length)
        }
        guard rc == 0 else { throw IOError(code: errno, operation: .getsockname) }
        return SocketAddress(storage: storage, length: length)
    }

    /// Closes a descriptor at once, outside any core. Never use it for a descriptor a core owns
    /// (accepted, connected or adopted there): use ``Core/close(_:)``, which also cancels the
    /// descriptor's operations in flight, or ``Core/release(_:)`` first.
    public static func closeNow(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// A connected pair of non-blocking, close-on-exec Unix stream sockets.
    public static func pair() throws(IOError) -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        let rc = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        guard rc == 0 else { throw IOError(code: errno, operation: .socket) }
        return (fds[0], fds[1])
    }
}
