#if canImport(Glibc)
import Glibc
#endif
public import NetRuntime

/// Where a peer is: a socket address, or a host name resolved when dialled.
public enum PeerAddress: Hashable, Sendable, CustomStringConvertible {
    case socket(SocketAddress)
    case host(String, port: Int)

    public var description: String {
        switch self {
        case .socket(let address): "\(address)"
        case .host(let name, let port): "\(name):\(port)"
        }
    }

    /// Resolves a host name with `getaddrinfo` off the cores (it blocks: it runs on a thread of
    /// Swift's global pool, never on a core's thread).
    public func resolve() async throws(PoolError) -> SocketAddress {
        switch self {
        case .socket(let address):
            return address
        case .host(let name, let port):
            if let literal = SocketAddress(host: name, port: port) { return literal }
            let resolved = await Self.lookUp(name, port: port)
            guard let resolved else { throw PoolError(.unresolvable, "\(name) does not resolve") }
            return resolved
        }
    }

    @concurrent
    private static func lookUp(_ name: String, port: Int) async -> SocketAddress? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(name, String(port), &hints, &result) == 0, let first = result else { return nil }
        defer { freeaddrinfo(result) }
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let current = node {
            if let address = current.pointee.ai_addr, current.pointee.ai_family == AF_INET || current.pointee.ai_family == AF_INET6 {
                var storage = sockaddr_storage()
                withUnsafeMutableBytes(of: &storage) { raw in
                    raw.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(current.pointee.ai_addrlen)))
                }
                return SocketAddress(storage: storage, length: current.pointee.ai_addrlen)
            }
            node = current.pointee.ai_next
        }
        return nil
    }
}

/// Why the manager could not provide a connection.
public struct PoolError: Error, Sendable, CustomStringConvertible {
    /// The kinds of failure.
    public enum Code: Sendable, Hashable {
        /// The dial failed (every attempt), or the peer is failing fast until its next probe.
        case unavailable
        /// The host name does not resolve.
        case unresolvable
        /// The caller's deadline passed while a dial was still going on.
        case timedOut
    }
    public var code: Code
    public var message: String
    /// The last dial error, if any.
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String { "PoolError(\(code)): \(message)" }
}
