
/// How TCP connections behave. Every limit has a safe default.
public struct TCPConfiguration: Sendable {
    /// The largest frame accepted or sent, payload bytes. Default 16 MiB; at most 4 GiB - 1 (the
    /// length prefix is 32 bits).
    public var maximumFrameSize: Int = 16 * 1024 * 1024
    /// Bytes queued for writing on one connection past which senders wait (the high-water mark).
    /// A single frame larger than this is still accepted when the queue is empty. Default 4 MiB.
    public var maximumQueuedBytes: Int = 4 * 1024 * 1024
    /// Frames written together at most in one vectored send (two vectors each). Default 512.
    public var maximumFramesPerWrite: Int = 512
    /// Bytes read at once into a pooled chunk, from which any number of frames are cut.
    /// Default 64 KiB.
    public var receiveChunkSize: Int = 64 * 1024
    /// How long a connect may take. Default 5 s.
    public var connectTimeout: Duration = .seconds(5)
    /// How long a connection may receive nothing before it is closed with
    /// ``TransportError/Code/timedOut``; `nil` waits forever. Default 300 s, so a peer that
    /// connects and never sends does not hold a connection forever. Timed by the coarse clock
    /// (`Deadline.coarseNow`, no system call per receive), so it may end up to
    /// `Deadline.coarseLag` (a few ms) early.
    public var idleTimeout: Duration? = .seconds(300)
    /// How long `close()` waits for frames already queued to be written. Default 1 s.
    public var closeFlushTimeout: Duration = .seconds(1)
    /// `TCP_NODELAY` (Nagle off). Default on.
    public var noDelay: Bool = true
    /// `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged before the kernel drops
    /// the connection; `nil` keeps the kernel's default.
    public var userTimeout: Duration?
    /// The listen backlog. Default 1024.
    public var backlog: Int32 = 1024

    /// The defaults.
    public init() {}

    /// The defaults with a tweak: `.defaults { $0.idleTimeout = nil }`.
    public static func defaults(_ configure: (inout TCPConfiguration) -> Void = { _ in }) -> TCPConfiguration {
        var configuration = TCPConfiguration()
        configure(&configuration)
        return configuration
    }
}
