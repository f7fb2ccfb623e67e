#if canImport(Glibc)
import Glibc
#endif

/// Nearest-rank percentile of sorted samples (`p` in 0...100).
func percentile(_ sorted: [UInt64], _ p: Double) -> UInt64 {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}

/// Prints a RESULT line (stdout is for LISTENING and RESULT lines only).
func result(peer: String, workload: String, value: Double, unit: String, p99us: Double?, n: Int) {
    let p99 = p99us.map { format($0) } ?? "-"
    print("RESULT peer=\(peer) workload=\(workload) value=\(format(value)) unit=\(unit) p99_us=\(p99) n=\(n)")
    fflush(nil)
}

func format(_ value: Double) -> String {
    let rounded = (value * 1000).rounded() / 1000
    return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
}

/// A diagnostic line on stderr.
func note(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// Heap memory at a stable address, which may be used across awaits.
final class BenchBuffer {
    let bytes: UnsafeMutableRawBufferPointer
    init(count: Int) {
        bytes = .allocate(byteCount: max(count, 1), alignment: 64)
        bytes.initializeMemory(as: UInt8.self, repeating: 0x5a)
    }
    deinit { bytes.deallocate() }
}
