/// The 32-bit immediate data every message carries (SEND_WITH_IMM): what kind of message it is
/// and the credits it returns. Messages have no header in their payload, so a payload built in
/// registered memory is sent as it is; its length is the completion's byte count.
///
/// Layout (host order before the verbs convert it to big-endian on the wire):
/// bits 31...24 the kind, bits 23...0 the credits returned (at most 16,777,215 at once).
public struct ImmediateData: Hashable, Sendable {
    /// What a message is.
    public enum Kind: UInt8, Sendable {
        /// Application data (its payload is a message).
        case data = 0x01
        /// Credits only, no payload.
        case credits = 0x02
        /// A large message announced by rendezvous: its payload is a ``RendezvousRequest``; the
        /// receiver RDMA-READs the message from the sender's memory.
        case rendezvous = 0x03
        /// Rendezvous messages read: its payload lists their tokens (``RendezvousDone``), so the
        /// sender lets their memory go.
        case rendezvousDone = 0x04
    }

    /// The largest credit count one message can carry.
    public static let maximumCredits = (1 << 24) - 1

    /// The kind.
    public let kind: Kind
    /// Credits returned.
    public let credits: Int

    /// Immediate data of `kind` returning `credits` (clamped to ``maximumCredits``).
    public init(kind: Kind, credits: Int) {
        self.kind = kind
        self.credits = min(max(0, credits), Self.maximumCredits)
    }

    /// Decodes `raw`; `nil` for an unknown kind.
    public init?(raw: UInt32) {
        guard let kind = Kind(rawValue: UInt8(truncatingIfNeeded: raw >> 24)) else { return nil }
        self.kind = kind
        self.credits = Int(raw & 0x00FF_FFFF)
    }

    /// The encoded value.
    public var raw: UInt32 { UInt32(kind.rawValue) << 24 | UInt32(credits) }
}
