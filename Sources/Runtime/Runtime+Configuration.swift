#if canImport(Glibc)
import Glibc
#endif
import CURing
public import Logging

extension Runtime {
    /// Which kernel interface the cores use for I/O.
    public struct Backend: Hashable, Sendable, CustomStringConvertible {
        enum Kind: Hashable, Sendable { case automatic, ioUring, epoll }
        let kind: Kind

        /// io_uring when it can be set up, else epoll; `NET_RUNTIME_BACKEND=epoll|io_uring` in
        /// the environment overrides it.
        public static let automatic = Backend(kind: .automatic)
        /// io_uring only: starting fails where it is forbidden.
        public static let ioUring = Backend(kind: .ioUring)
        /// epoll only.
        public static let epoll = Backend(kind: .epoll)

        public var description: String {
            switch kind {
            case .automatic: "automatic"
            case .ioUring: "io_uring"
            case .epoll: "epoll"
            }
        }
    }

    /// How a runtime is set up. Every field has a safe default.
    public struct Configuration: Sendable {
        /// The CPUs to run one core each on; `nil` (the default) means every CPU this process may
        /// run on (its affinity mask, so `taskset` works).
        public var cpus: [Int]?
        /// How many cores to start when ``cpus`` is `nil`; `nil` means one per allowed CPU.
        public var coreCount: Int?
        /// Whether each core's thread is pinned to its CPU. Default `true`.
        public var pinThreads: Bool
        /// The kernel interface for I/O. Default ``Backend/automatic``.
        public var backend: Backend
        /// Submission queue entries per io_uring ring. Default 256; more operations than this may
        /// be pending at once (a full queue is submitted and retried).
        public var ringEntries: UInt32
        /// Completion queue entries per ring. Default 4096.
        public var completionEntries: UInt32
        /// Where the runtime logs (backend choice and why, start and stop).
        public var logger: Logger
        /// How many jobs enqueued during a turn of a core's loop may still run in that turn, after
        /// the jobs that were ready when it began. Most are hand-offs (a caller resumed by a
        /// connection's reader, a task's hop back to the core's actor), which would otherwise
        /// wait a turn and often a kernel entry; past the bound the core reaps I/O first, so
        /// tasks that keep waking each other cannot starve it. Default 256; 0 runs every such job
        /// a turn later; a negative value counts as 0.
        public var handOffJobsPerTurn: Int = 256
        /// How long a core with nothing to do polls for completions and jobs before it parks in
        /// the kernel. A parked core's wake-up costs tens of microseconds when the work comes
        /// from another CPU (most of a loopback round trip here), so polling shortens round
        /// trips, at the price of a CPU kept busy for this long after each piece of work (Seastar
        /// polls for 200 µs by default). Suits cores pinned to CPUs that serve nothing else.
        /// Default `.zero`: park at once, so an idle runtime costs no CPU; a negative value
        /// counts as zero.
        public var idlePollTime: Duration = .zero
        /// How long a graceful shutdown lets work in progress finish before cancelling it.
        /// Default 10 s.
        public var shutdownGracePeriod: Duration = .seconds(10)
        /// How long a graceful shutdown waits for cancelled work to end before stopping the cores
        /// under it. Default 1 s.
        public var cancellationGracePeriod: Duration = .seconds(1)

        /// The defaults, with an optional tweak:
        /// `Runtime.Configuration.defaults { $0.coreCount = 1 }`.
        public static func defaults(_ configure: (inout Configuration) -> Void = { _ in }) -> Configuration {
            var configuration = Configuration()
            configure(&configuration)
            return configuration
        }

        /// The defaults.
        public init(
            cpus: [Int]? = nil, coreCount: Int? = nil, pinThreads: Bool = true, backend: Backend = .automatic,
            ringEntries: UInt32 = 256, completionEntries: UInt32 = 4096,
            logger: Logger = Logger(label: "swift-net.runtime")
        ) {
            self.cpus = cpus
            self.coreCount = coreCount
            self.pinThreads = pinThreads
            self.backend = backend
            self.ringEntries = ringEntries
            self.completionEntries = completionEntries
            self.logger = logger
        }
    }

    /// The CPUs the calling thread may run on (its affinity mask), in ascending order.
    public static var allowedCPUs: [Int] {
        var cpus = [Int32](repeating: 0, count: 1024)
        let count = curing_allowed_cpus(&cpus, Int32(cpus.count))
        guard count > 0 else { return [0] }
        return cpus.prefix(Int(count)).map(Int.init)
    }
}
