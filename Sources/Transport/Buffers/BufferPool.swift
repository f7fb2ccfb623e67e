/// Hands out writable buffers on one core (the role `BufferPool` plays in the Rust crate). Each
/// transport offers the pool suited to it: plain pooled memory for TCP, registered memory for
/// RDMA, so a message built in it is sent without a copy.
public protocol BufferPool: AnyObject {
    /// A writable buffer with room for at least `capacity` bytes.
    func allocate(capacity: Int) -> WritableBuffer
}
