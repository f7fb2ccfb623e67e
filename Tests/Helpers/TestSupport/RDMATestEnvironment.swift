#if canImport(Glibc)
import Glibc
#endif

/// Where the tests run: in the soft-RoCE guest of scripts/rdma-vm, or on a host without RDMA.
/// Shared by the RDMA suites and the suites that run other layers over RDMA.
public enum RDMATestEnvironment {
    /// Set by scripts/rdma-vm in the guest.
    public static let inGuest = getenv("NET_RDMA_GUEST").map { String(cString: $0) } == "1"
    /// rxe0's address in the guest (rdma_cm cannot route 127.0.0.1).
    public static let address = getenv("RDMA_ADDR").map { String(cString: $0) } ?? "10.77.0.1"
    /// Whether this machine has a verbs device at all.
    public static var hasDevice: Bool {
        guard let dir = opendir("/sys/class/infiniband") else { return false }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { return true }
        }
        return false
    }
    /// Everything in the guest is emulated and slow: time limits there are this many times longer.
    public static let timeScale: Int64 = inGuest ? 10 : 1
    /// `duration`, scaled for the guest.
    public static func scaled(_ duration: Duration) -> Duration { duration * timeScale }
}
