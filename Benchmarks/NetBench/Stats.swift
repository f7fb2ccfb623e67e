#if canImport(Glibc)
import Glibc
#endif

/// Nearest-rank percentile of sorted samples (`p` in 0...100).
func percentile(_ sorted: [UInt64], _ p: Double) -> UInt64 {
    guard !sorted.isEmpty else { return 0 }
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}

/// One measurement as its RESULT line states it.
struct ResultRow {
    var peer: String
    var workload: String
    var value: Double
    var unit: String
    var p99us: Double?
    var n: Int
}

/// Prints a RESULT line and returns it. Stdout carries LISTENING and RESULT lines, and the table
/// that closes `run` (whose lines start with neither).
@discardableResult
func result(peer: String, workload: String, value: Double, unit: String, p99us: Double?, n: Int) -> ResultRow {
    let p99 = p99us.map { format($0) } ?? "-"
    print("RESULT peer=\(peer) workload=\(workload) value=\(format(value)) unit=\(unit) p99_us=\(p99) n=\(n)")
    fflush(nil)
    return ResultRow(peer: peer, workload: workload, value: value, unit: unit, p99us: p99us, n: n)
}

/// Prints `rows` as a table for people, under the RESULT lines.
func printTable(_ rows: [ResultRow], layer: String, transport: String) {
    let header = ["layer", "transport", "workload", "value", "unit", "p99 µs", "n"]
    let cells = rows.map { row in
        [layer, transport, row.workload, format(row.value), row.unit, row.p99us.map(format) ?? "-", "\(row.n)"]
    }
    let widths = header.indices.map { column in ([header] + cells).map { $0[column].count }.max() ?? 0 }
    func line(_ fields: [String]) -> String {
        zip(fields, widths).enumerated().map { column, cell in
            let padding = String(repeating: " ", count: cell.1 - cell.0.count)
            return column == 3 || column >= 5 ? padding + cell.0 : cell.0 + padding  // numbers to the right
        }.joined(separator: "  ")
    }
    print("")
    print(line(header))
    print(widths.map { String(repeating: "-", count: $0) }.joined(separator: "  "))
    for row in cells { print(line(row)) }
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
