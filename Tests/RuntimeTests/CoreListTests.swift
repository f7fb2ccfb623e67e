@testable import NetRuntime
import Testing

@Suite("Core list")
struct CoreListTests {
    /// An element that counts its own destruction, to check that the list neither leaks nor
    /// destroys an element twice.
    final class Tracked {
        let value: Int
        let destroyed: Counter
        init(_ value: Int, _ destroyed: Counter) {
            self.value = value
            self.destroyed = destroyed
        }
        deinit { destroyed.count += 1 }
    }

    final class Counter { var count = 0 }

    @Test("Elements keep their order through growth, and are read and written in place")
    func orderAndGrowth() {
        var list = CoreList<Int>(capacity: 2)
        let emptyAtFirst = list.isEmpty
        #expect(emptyAtFirst)
        for i in 0..<100 { list.append(i) }
        let count = list.count, elements = list.elements
        #expect(count == 100)
        #expect(elements == Array(0..<100))
        list[42] = -1
        list[7] += 1000
        let (a, b, c) = (list[42], list[7], list[99])
        #expect(a == -1 && b == 1007 && c == 99)
    }

    @Test("A list made of repeated values holds that many, and grows from there")
    func repeating() {
        var list = CoreList(repeating: false, count: 5)
        list[3] = true
        list.append(true)
        let elements = list.elements
        #expect(elements == [false, false, false, true, false, true])
        let empty = CoreList(repeating: 1, count: 0)
        let isEmpty = empty.isEmpty
        #expect(isEmpty)
    }

    @Test("removeAll hands every element over in order, leaves the list empty and usable")
    func drain() {
        var list = CoreList<Int>(capacity: 1)
        for i in 0..<10 { list.append(i) }
        var seen: [Int] = []
        list.removeAll { seen.append($0) }
        let emptied = list.isEmpty
        #expect(seen == Array(0..<10))
        #expect(emptied)
        list.append(5)
        let elements = list.elements
        #expect(elements == [5])
        let popped = list.popLast(), poppedFromEmpty = list.popLast()
        #expect(popped == 5)
        #expect(poppedFromEmpty == nil)
    }

    @Test("Elements are destroyed exactly once: when removed, drained, popped or with the list")
    func lifetimes() {
        let destroyed = Counter()
        do {
            var list = CoreList<Tracked>(capacity: 1)
            for i in 0..<8 { list.append(Tracked(i, destroyed)) }
            #expect(destroyed.count == 0)
            let last = list.popLast()
            #expect(last?.value == 7)
            _ = consume last
            #expect(destroyed.count == 1)
            var values: [Int] = []
            list.removeAll { values.append($0.value) }
            #expect(values == Array(0..<7))
            #expect(destroyed.count == 8)
            for i in 0..<3 { list.append(Tracked(i, destroyed)) }
            list.removeAll()
            #expect(destroyed.count == 11)
            for i in 0..<4 { list.append(Tracked(i, destroyed)) }
        }
        #expect(destroyed.count == 15)  // the list's own end destroys what it still holds
    }

    @Test("Swapping two lists (a core's double-buffered work lists) moves their contents")
    func swapping() {
        var a = CoreList<Int>()
        var b = CoreList<Int>()
        a.append(1)
        a.append(2)
        swap(&a, &b)
        let aEmpty = a.isEmpty, bElements = b.elements
        #expect(aEmpty && bElements == [1, 2])
    }
}
