#if canImport(Glibc)
import Glibc
#endif
import Logging

/// Chooses each core's backend: io_uring unless the configuration or `NET_RUNTIME_BACKEND` says
/// epoll, falling back to epoll when io_uring cannot be set up (EPERM under Docker's seccomp
/// profile or `kernel.io_uring_disabled`, ENOSYS on kernels without it, ENOMEM under a tight
/// RLIMIT_MEMLOCK). The choice is logged once, with its reason.
struct BackendChoice {
    let requested: Runtime.Backend
    let reason: String
    let ringEntries: UInt32
    let completionEntries: UInt32
    /// What each core's loop takes from the configuration.
    let loopSettings: CoreLoopSettings

    init(configuration: Runtime.Configuration) {
        ringEntries = configuration.ringEntries
        completionEntries = configuration.completionEntries
        loopSettings = CoreLoopSettings(configuration)
        if configuration.backend == .automatic, let value = getenv("NET_RUNTIME_BACKEND").map({ String(cString: $0) }) {
            switch value.lowercased() {
            case "epoll": requested = .epoll
            case "io_uring", "iouring", "uring": requested = .ioUring
            default: requested = .automatic
            }
            reason = "NET_RUNTIME_BACKEND=\(value)"
        } else {
            requested = configuration.backend
            reason = "configuration"
        }
    }

    func startCore(index: Int, cpu: Int?, logger: Logger) throws -> CoreExecutor {
        let entries = ringEntries
        let completions = completionEntries
        switch requested.kind {
        case .ioUring:
            let executor = try CoreThread.start(index: index, cpu: cpu, settings: loopSettings) {
                try URingBackend(entries: entries, completionEntries: completions)
            }
            if index == 0 { logger.info("runtime backend: io_uring", metadata: ["reason": "\(reason)"]) }
            return executor
        case .epoll:
            let executor = try CoreThread.start(index: index, cpu: cpu, settings: loopSettings) { try EpollBackend() }
            if index == 0 { logger.info("runtime backend: epoll", metadata: ["reason": "\(reason)"]) }
            return executor
        case .automatic:
            do {
                let executor = try CoreThread.start(index: index, cpu: cpu, settings: loopSettings) {
                    try URingBackend(entries: entries, completionEntries: completions)
                }
                if index == 0 { logger.info("runtime backend: io_uring", metadata: ["reason": "available"]) }
                return executor
            } catch let error as IOError where error.operation == .ringSetup {
                let executor = try CoreThread.start(index: index, cpu: cpu, settings: loopSettings) { try EpollBackend() }
                if index == 0 {
                    logger.notice(
                        "runtime backend: epoll",
                        metadata: ["reason": "io_uring_setup failed: \(Self.explain(error.code))"])
                }
                return executor
            }
        }
    }

    static func explain(_ code: Int32) -> String {
        switch code {
        case EPERM: "EPERM (forbidden by seccomp or kernel.io_uring_disabled)"
        case ENOSYS: "ENOSYS (kernel without io_uring)"
        case ENOMEM: "ENOMEM (RLIMIT_MEMLOCK too low for the ring)"
        default: "errno \(code)"
        }
    }
}
