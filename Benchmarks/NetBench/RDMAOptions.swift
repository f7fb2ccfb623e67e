#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import NetRDMA
import NetRuntime

/// How `serve` and `run` set up RDMA connections (`--transport rdma`). Give both the same.
struct RDMAOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "RDMA: the largest message in bytes (today each receive buffer's size). Default: the transport's (64 KiB). Bulk needs the payload plus the RPC header: 1052672 for 1 MiB payloads. Give serve and run the same.",
        valueName: "bytes"))
    var rdmaMaxMessage: Int?

    @Option(help: ArgumentHelp(
        "RDMA: a receive with nothing to read polls the completion queue this long before it waits for an event (busy polling). Default: off.",
        valueName: "µs"))
    var rdmaBusyPollUs: Int?

    /// The connections' configuration. A slow emulated guest gets a long connect timeout; a
    /// maximum above the default takes fewer, larger receive buffers (as perftest's bandwidth
    /// tests do), from a slab class that holds one message whole.
    var configuration: RDMATransport.Configuration {
        .defaults { configuration in
            configuration.connectTimeout = .seconds(60)
            if let busy = rdmaBusyPollUs { configuration.busyPolling = .microseconds(busy) }
            if let maximum = rdmaMaxMessage, maximum > configuration.maximumMessageSize {
                configuration.maximumMessageSize = maximum
                configuration.receiveDepth = 16
                configuration.creditReturnBatch = 4
                let chunk = (maximum + 4095) / 4096 * 4096
                var classes = configuration.slab.sizeClasses.filter { $0 < chunk }
                classes.append(chunk)
                configuration.slab.sizeClasses = classes
            } else if let maximum = rdmaMaxMessage {
                configuration.maximumMessageSize = maximum
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
