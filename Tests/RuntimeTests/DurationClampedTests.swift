import NetRuntime
import Testing

@Suite("Duration conversions")
struct DurationClampedTests {
    @Test("Nanoseconds and milliseconds saturate at their bounds instead of trapping")
    func saturates() {
        #expect(Duration.milliseconds(1_500).nanosecondsClamped == 1_500_000_000)
        #expect(Duration.nanoseconds(-7).nanosecondsClamped == -7)
        #expect(Duration.seconds(Int64.max).nanosecondsClamped == .max)
        #expect(Duration.seconds(Int64.min).nanosecondsClamped == .min)
        #expect(Duration.milliseconds(1_500).millisecondsClamped == 1_500)
        #expect(Duration.microseconds(999).millisecondsClamped == 0)
        #expect(Duration.seconds(10_000_000).millisecondsClamped == .max)  // 10^10 ms is past Int32
        #expect(Duration.seconds(Int64.min).millisecondsClamped == .min)
    }
}
