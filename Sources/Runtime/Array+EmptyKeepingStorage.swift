extension Array {
    /// Empties the array and keeps its storage. For the one or two entries a core's turn usually
    /// leaves in a work list, removing them one by one runs a fraction of the instructions of
    /// `removeAll(keepingCapacity: true)`, a generic range replacement; longer lists take that.
    /// Inlinable, so it is specialized where it is used (unspecialized, it would look up
    /// metadata and witness tables on every call).
    @inlinable
    package mutating func emptyKeepingStorage() {
        if count > 4 {
            removeAll(keepingCapacity: true)
        } else {
            while !isEmpty { removeLast() }
        }
    }
}
