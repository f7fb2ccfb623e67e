import CURing

/// What the running kernel's io_uring offers, probed once per ring (`IORING_REGISTER_PROBE` and
/// the setup flags it accepted), so code that also runs on older kernels (the RDMA guest runs
/// 6.1) never assumes a feature.
public struct URingFeatures: Sendable, CustomStringConvertible {
    /// The `IORING_SETUP_*` flags the ring was created with.
    public let setupFlags: UInt32
    /// The `IORING_FEAT_*` flags the kernel reported.
    public let features: UInt32
    /// The submission and completion queue sizes the kernel granted.
    public let submissionEntries: UInt32
    /// The completion queue size the kernel granted.
    public let completionEntries: UInt32
    private let opcodes: [Bool]

    init(setupFlags: UInt32, features: UInt32, submissionEntries: UInt32, completionEntries: UInt32, opcodes: [Bool]) {
        self.setupFlags = setupFlags
        self.features = features
        self.submissionEntries = submissionEntries
        self.completionEntries = completionEntries
        self.opcodes = opcodes
    }

    /// Whether the kernel supports an `IORING_OP_*` opcode.
    public func supports(opcode: UInt32) -> Bool {
        Int(opcode) < opcodes.count && opcodes[Int(opcode)]
    }

    /// How many opcodes the kernel supports.
    public var supportedOpcodeCount: Int { opcodes.lazy.filter { $0 }.count }

    /// Whether completions are never dropped when the completion queue overflows.
    public var noDrop: Bool { features & CURING_FEAT_NODROP != 0 }

    /// Whether the wait can carry its own timeout (no timeout entry in the submission queue).
    public var extendedArguments: Bool { features & CURING_FEAT_EXT_ARG != 0 }

    /// Whether multishot accept and the `IORING_OP_SOCKET` generation of opcodes exist (5.19).
    public var hasSocketOpcode: Bool { supports(opcode: IORING_OP_SOCKET.rawValue) }

    /// Whether zero-copy send exists (6.0).
    public var hasZeroCopySend: Bool { supports(opcode: IORING_OP_SEND_ZC.rawValue) }

    public var description: String {
        "sq=\(submissionEntries) cq=\(completionEntries) setup=0x\(String(setupFlags, radix: 16)) "
            + "features=0x\(String(features, radix: 16)) opcodes=\(supportedOpcodeCount)"
    }

    /// Reads the probe of an initialized ring.
    static func probe(ring: UnsafeMutablePointer<io_uring>, params: io_uring_params) -> URingFeatures {
        var opcodes: [Bool] = []
        if let probe = io_uring_get_probe_ring(ring) {
            let last = Int(probe.pointee.last_op)
            opcodes = (0...max(last, 0)).map { io_uring_opcode_supported(probe, Int32($0)) != 0 }
            io_uring_free_probe(probe)
        }
        return URingFeatures(
            setupFlags: params.flags, features: params.features,
            submissionEntries: params.sq_entries, completionEntries: params.cq_entries,
            opcodes: opcodes)
    }
}
