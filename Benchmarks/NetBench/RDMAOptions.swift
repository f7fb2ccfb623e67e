#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import NetRDMA
import NetRuntime

/// How `serve` and `run` set up RDMA connections (`--transport rdma`). Give both the same.
struct RDMAOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "RDMA: the largest message in bytes. Default: the transport's (16 MiB). Give serve and run the same.",
        valueName: "bytes"))
    var rdmaMaxMessage: Int?

    @Option(help: ArgumentHelp(
        "RDMA: the size of each receive buffer: larger messages go by rendezvous (RDMA READ). Default: the transport's (64 KiB). 1052672 sends 1 MiB payloads eagerly. Give serve and run the same.",
        valueName: "bytes"))
    var rdmaReceiveBuffer: Int?

    @Option(help: ArgumentHelp(
        "RDMA: a receive with nothing to read polls the completion queue this long before it waits for an event (busy polling). Default: off.",
        valueName: "µs"))
    var rdmaBusyPollUs: Int?

    /// The connections' configuration. A slow emulated guest gets a long connect timeout;
    /// receive buffers above the default are fewer (as perftest's bandwidth tests use), from a
    /// slab class that holds one message whole.
    var configuration: RDMATransport.Configuration {
        .defaults { configuration in
            configuration.connectTimeout = .seconds(60)
            if let busy = rdmaBusyPollUs { configuration.busyPolling = .microseconds(busy) }
            if let maximum = rdmaMaxMessage { configuration.maximumMessageSize = maximum }
            if let size = rdmaReceiveBuffer, size > configuration.receiveBufferSize {
                configuration.receiveBufferSize = size
                configuration.maximumMessageSize = max(configuration.maximumMessageSize, size)
                configuration.receiveDepth = 16
                configuration.creditReturnBatch = 4
                let chunk = (size + 4095) / 4096 * 4096
                var classes = configuration.slab.sizeClasses.filter { $0 < chunk }
                classes.append(chunk)
                configuration.slab.sizeClasses = classes
            } else if let size = rdmaReceiveBuffer {
                configuration.receiveBufferSize = size
            }
        }
    }

    /// `host`, or rxe0's address in the guest of scripts/rdma-vm (`RDMA_ADDR`): rdma_cm cannot
    /// route 127.0.0.1, so RDMA has no loopback default.
    static func host(_ host: String?) throws -> String {
        if let host { return host }
        if let address = getenv("RDMA_ADDR") { return String(cString: address) }
        throw ValidationError("--transport rdma needs --host set to an RDMA device's address (rdma_cm cannot route 127.0.0.1)")
    }
}
