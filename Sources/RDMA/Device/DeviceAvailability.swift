#if canImport(Glibc)
import Glibc
#endif
import CRDMA
import NetRuntime
import NetTransport

/// Whether this machine has an RDMA device, checked before anything else touches the verbs, so
/// a host without one gets a clear error at dial or listen rather than a crash.
enum DeviceAvailability {
    /// Throws ``TransportError/Code/unavailable`` when no RDMA device can be opened.
    static func check() throws(TransportError) {
        var count: Int32 = 0
        errno = 0
        guard let list = ibv_get_device_list(&count) else {
            let code = errno
            throw TransportError(
                .unavailable, "no RDMA device on this machine (ibv_get_device_list failed)",
                underlying: IOError(code: code, operation: .init("ibv_get_device_list")))
        }
        ibv_free_device_list(list)
        guard count > 0 else {
            throw TransportError(.unavailable, "no RDMA device on this machine (ibv_get_device_list found none)")
        }
    }
}

/// A verbs or rdma_cm call failed: the error, with `errno`, for a transport error.
func verbsError(_ code: TransportError.Code, _ call: String, errno value: Int32 = errno) -> TransportError {
    TransportError(code, "\(call) failed", underlying: IOError(code: value, operation: .init(call)))
}
