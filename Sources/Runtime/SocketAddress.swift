public import Glibc

/// An IPv4 or IPv6 socket address (address and port), stored as a `sockaddr_storage`.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// The raw address; valid for ``length`` bytes.
    public private(set) var storage: sockaddr_storage
    /// How many bytes of ``storage`` are meaningful.
    public private(set) var length: socklen_t

    /// Wraps a raw address that the kernel filled in.
    public init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
    }

    /// Parses a numeric IPv4 (`127.0.0.1`) or IPv6 (`::1`, with or without brackets) address.
    ///
    /// Returns `nil` when `host` is not a numeric address; name resolution is not done here.
    public init?(host: String, port: Int) {
        guard (0...65535).contains(port) else { return nil }
        var host = host
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var storage = sockaddr_storage()
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            withUnsafeMutableBytes(of: &storage) { raw in
                let sin = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                sin.pointee.sin_family = sa_family_t(AF_INET)
                sin.pointee.sin_port = in_port_t(UInt16(port).bigEndian)
                sin.pointee.sin_addr = v4
            }
            self.init(storage: storage, length: socklen_t(MemoryLayout<sockaddr_in>.size))
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            withUnsafeMutableBytes(of: &storage) { raw in
                let sin6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                sin6.pointee.sin6_family = sa_family_t(AF_INET6)
                sin6.pointee.sin6_port = in_port_t(UInt16(port).bigEndian)
                sin6.pointee.sin6_addr = v6
            }
            self.init(storage: storage, length: socklen_t(MemoryLayout<sockaddr_in6>.size))
            return
        }
        return nil
    }

    /// `AF_INET` or `AF_INET6`.
    public var family: Int32 { Int32(storage.ss_family) }

    /// The port, in host byte order.
    public var port: Int {
        get {
            withUnsafeBytes(of: storage) { raw in
                switch family {
                case AF_INET: Int(UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port))
                case AF_INET6: Int(UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port))
                default: 0
                }
            }
        }
        set {
            let value = in_port_t(UInt16(truncatingIfNeeded: newValue).bigEndian)
            let family = self.family
            withUnsafeMutableBytes(of: &storage) { raw in
                switch family {
                case AF_INET: raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self).pointee.sin_port = value
                case AF_INET6: raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self).pointee.sin6_port = value
                default: break
                }
            }
        }
    }

    /// The numeric host part, for example `127.0.0.1` or `::1`.
    public var host: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        return withUnsafeBytes(of: storage) { raw -> String in
            let ok: UnsafePointer<CChar>?
            switch family {
            case AF_INET:
                var addr = raw.load(as: sockaddr_in.self).sin_addr
                ok = inet_ntop(AF_INET, &addr, &buffer, socklen_t(buffer.count))
            case AF_INET6:
                var addr = raw.load(as: sockaddr_in6.self).sin6_addr
                ok = inet_ntop(AF_INET6, &addr, &buffer, socklen_t(buffer.count))
            default:
                ok = nil
            }
            guard ok != nil else { return "?" }
            return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
    }

    /// `host:port`, with brackets around an IPv6 host.
    public var description: String {
        family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Calls `body` with a `sockaddr` pointer to this address and its length.
    public func withSockAddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: storage) { raw in
            try body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }

    public static func == (lhs: SocketAddress, rhs: SocketAddress) -> Bool {
        guard lhs.length == rhs.length else { return false }
        return withUnsafeBytes(of: lhs.storage) { a in
            withUnsafeBytes(of: rhs.storage) { b in
                memcmp(a.baseAddress!, b.baseAddress!, Int(lhs.length)) == 0
            }
        }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: storage) { hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: $0.prefix(Int(length)))) }
    }
}
