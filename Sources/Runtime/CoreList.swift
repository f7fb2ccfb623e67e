/// A growable list for one core's own bookkeeping (its operation slots, its end-of-turn and
/// readiness work lists, a transport's buffers to repost), on memory it owns outright.
///
/// An `Array` checks at every mutation that its storage is not shared (a runtime call), and
/// copies of its elements in and out retain and release them. A core's lists are never shared,
/// and their elements move in and out: this list is non-copyable, so it needs no such check,
/// and ``append(_:)`` and ``removeAll(_:)`` move elements rather than copy them. Indexing is
/// bounds-checked, like an `Array`'s.
///
/// Its storage doubles when full and is never shrunk. Inlinable throughout, so that the
/// layers above get it specialized for their element types; and public rather than `package`,
/// because Swift 6.3 does not inline `package` code into other modules even when it is marked
/// `@inlinable`: it calls it unspecialized, with a metadata look-up per call.
///
/// Code of your own that runs on one core can use it as well, on the same terms: the list must
/// stay on its core (it is not `Sendable`), and must not be used from within ``removeAll(_:)``'s
/// body.
@frozen
public struct CoreList<Element>: ~Copyable {
    @usableFromInline var base: UnsafeMutablePointer<Element>
    @usableFromInline var capacity: Int
    /// The number of elements.
    @inlinable
    public var count: Int { storedCount }
    // Usable from inlinable code, unlike a `private(set)` property's setter.
    @usableFromInline var storedCount: Int

    /// An empty list with room for `capacity` elements before it grows.
    @inlinable
    public init(capacity: Int = 16) {
        self.capacity = Swift.max(capacity, 1)
        base = .allocate(capacity: self.capacity)
        storedCount = 0
    }

    /// A list of `count` copies of `value`.
    @inlinable
    public init(repeating value: Element, count: Int) where Element: Copyable {
        self.init(capacity: count)
        base.initialize(repeating: value, count: Swift.max(count, 0))
        storedCount = Swift.max(count, 0)
    }

    @inlinable
    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }

    /// Whether the list has no elements.
    @inlinable @inline(__always)
    public var isEmpty: Bool { count == 0 }

    /// Adds `element` at the end.
    @inlinable @inline(__always)
    public mutating func append(_ element: consuming Element) {
        if count == capacity { grow() }
        (base + count).initialize(to: element)
        storedCount &+= 1
    }

    @inlinable @inline(never)
    mutating func grow() {
        let bigger = UnsafeMutablePointer<Element>.allocate(capacity: capacity * 2)
        bigger.moveInitialize(from: base, count: count)
        base.deallocate()
        base = bigger
        capacity *= 2
    }

    /// The element at `index`, read and written in place.
    @inlinable
    public subscript(index: Int) -> Element {
        @inline(__always)
        unsafeAddress {
            precondition(index >= 0 && index < count, "CoreList index out of range")
            return UnsafePointer(base + index)
        }
        @inline(__always)
        unsafeMutableAddress {
            precondition(index >= 0 && index < count, "CoreList index out of range")
            return base + index
        }
    }

    /// Removes and returns the last element, or nil if the list is empty.
    @inlinable @inline(__always)
    public mutating func popLast() -> Element? {
        guard count > 0 else { return nil }
        storedCount &-= 1
        return (base + count).move()
    }

    /// Removes every element, first to last, handing each to `body`. The list keeps its storage.
    /// `body` must not use this list (to add work while draining one list, double-buffer: swap
    /// in another first, as a core's loop does).
    @inlinable @inline(__always)
    public mutating func removeAll(_ body: (consuming Element) -> Void) {
        let n = count
        storedCount = 0  // first: if `body` traps, the moved-out elements are not destroyed twice
        var i = 0
        while i < n {
            body((base + i).move())
            i &+= 1
        }
    }

    /// Removes every element. The list keeps its storage.
    @inlinable @inline(__always)
    public mutating func removeAll() {
        let n = count
        storedCount = 0
        // One by one: `deinitialize(count: n)` of references is a runtime call (an array
        // destroy), where a core's lists mostly hold one element or two.
        var i = 0
        while i < n {
            (base + i).deinitialize(count: 1)
            i &+= 1
        }
    }
}

extension CoreList where Element: Copyable {
    /// Every element, first to last, copied into an array (for tests and for rare, slow paths).
    @inlinable
    public var elements: [Element] {
        Array(UnsafeBufferPointer(start: base, count: count))
    }
}
