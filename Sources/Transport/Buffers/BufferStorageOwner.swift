/// An object that lends memory to ``BufferStorage`` and takes it back when no buffer refers to
/// it any more: a release action that costs no allocation, where a closure would cost one per
/// storage (an RDMA connection lends every received message its receive buffer this way).
public protocol BufferStorageOwner: AnyObject {
    /// Takes back the memory at `base` that was lent with `tag`. Called once per storage made
    /// with ``BufferStorage/init(wrapping:capacity:owner:tag:)``, by whoever drops the last
    /// reference to it (for per-core storage: on its core).
    func storageReleased(_ base: UnsafeMutableRawPointer, tag: Int)
}
