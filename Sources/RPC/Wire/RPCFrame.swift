public import NetTransport

/// How a request names its method: by stable numeric ID, or by name (distributed actors).
public enum MethodKey: Hashable, Sendable, CustomStringConvertible {
    case id(UInt32)
    case name(String)

    public var description: String {
        switch self {
        case .id(let id): "#\(id)"
        case .name(let name): name
        }
    }
}

/// The limits a peer announces in its hello frame.
public struct HelloLimits: Sendable, Hashable {
    /// Calls the sender of the hello accepts in flight on this connection.
    public var maximumConcurrentCalls: UInt32
    /// Metadata bytes per request the sender accepts.
    public var maximumMetadataBytes: UInt32

    /// Limits to announce.
    public init(maximumConcurrentCalls: UInt32, maximumMetadataBytes: UInt32) {
        self.maximumConcurrentCalls = maximumConcurrentCalls
        self.maximumMetadataBytes = maximumMetadataBytes
    }
}

/// One parsed frame (docs/PROTOCOL.md). Fields that a kind does not carry are empty.
public struct RPCFrame {
    public var kind: FrameKind
    public var flags: FrameFlags
    public var callID: UInt64
    /// request, oneWay: the method.
    public var method: MethodKey = .id(0)
    /// request, oneWay: the time left to the deadline when sent, in nanoseconds.
    public var timeoutNanoseconds: UInt64?
    /// request, oneWay: per-call metadata.
    public var metadata = RPCMetadata()
    /// request, oneWay, response: the payload (a slice of the received message: no copy).
    public var payload = Message()
    /// error, goAway: the status.
    public var status: RPCError?
    /// hello: versions and limits.
    public var helloVersions: ClosedRange<UInt8>?
    public var helloLimits: HelloLimits?
}

/// A frame that could not be parsed. `callID` is known when the header was whole; `fatal`
/// errors close the connection (docs/PROTOCOL.md), the others fail only their call.
public struct FrameError: Error {
    public var callID: UInt64?
    public var error: RPCError
    public var fatal: Bool
    /// The frame's kind, when the header was whole (a one-way call's error is not answered).
    public var kind: FrameKind?

    /// An error of the frame whose call ID (and kind) are known, if they are.
    public init(callID: UInt64?, error: RPCError, fatal: Bool, kind: FrameKind? = nil) {
        self.callID = callID
        self.error = error
        self.fatal = fatal
        self.kind = kind
    }
}

extension RPCFrame {
    /// Parses one frame. `maximumMetadataBytes` bounds a request's metadata.
    public static func parse(_ message: Message, maximumMetadataBytes: Int) throws(FrameError) -> RPCFrame {
        var reader = ByteReader(message)
        func fatal(_ text: String, _ callID: UInt64? = nil) -> FrameError {
            FrameError(callID: callID, error: RPCError(.protocolError, text), fatal: true)
        }
        let version: UInt8, kindByte: UInt8, flagBits: UInt16, callID: UInt64
        do {
            version = try reader.read()
            kindByte = try reader.read()
            flagBits = try reader.read()
            callID = try reader.read()
        } catch {
            throw fatal("a frame of \(message.count) bytes is shorter than the 12-byte header")
        }
        guard version == RPCWire.version else { throw fatal("unsupported protocol version \(version)") }
        guard let kind = FrameKind(rawValue: kindByte) else { throw fatal("unknown frame kind \(kindByte)", callID) }
        var frame = RPCFrame(kind: kind, flags: FrameFlags(rawValue: flagBits), callID: callID)
        do {
            switch kind {
            case .request, .oneWay:
                try parseCall(&reader, into: &frame, maximumMetadataBytes: maximumMetadataBytes)
            case .response:
                frame.payload = reader.readRest()
            case .error, .goAway:
                let code: UInt16 = try reader.read()
                let length: UInt16 = try reader.read()
                frame.status = RPCError(RPCError.Code(rawValue: code), try reader.readString(count: Int(length)))
            case .hello:
                let magic: UInt32 = try reader.read()
                guard magic == 0x534E_5250 else { throw fatal("a hello without the SNRP magic", callID) }
                let low: UInt8 = try reader.read()
                let high: UInt8 = try reader.read()
                guard low <= high else { throw fatal("a hello with versions \(low)...\(high)", callID) }
                frame.helloVersions = low...high
                frame.helloLimits = HelloLimits(maximumConcurrentCalls: try reader.read(), maximumMetadataBytes: try reader.read())
            case .cancel, .ping, .pong:
                break
            }
        } catch let error as FrameError {
            throw error
        } catch {
            throw fatal("a truncated \(kind) frame", callID)
        }
        return frame
    }

    private static func parseCall(_ reader: inout ByteReader, into frame: inout RPCFrame, maximumMetadataBytes: Int) throws {
        // Text that is not UTF-8 fails the call (the frame's end is known: the stream is sound);
        // decoded leniently, each bad byte would grow to three and pass the metadata limit.
        let (callID, kind) = (frame.callID, frame.kind)
        func notUTF8(_ what: String) -> FrameError {
            FrameError(callID: callID, error: RPCError(.protocolError, "\(what) that is not valid UTF-8"), fatal: false, kind: kind)
        }
        if frame.flags.contains(.methodName) {
            let length: UInt8 = try reader.read()
            guard let name = try reader.readUTF8(count: Int(length)) else { throw notUTF8("a method name") }
            frame.method = .name(name)
        } else {
            frame.method = .id(try reader.read())
        }
        if frame.flags.contains(.deadline) {
            frame.timeoutNanoseconds = try reader.read()
        }
        if frame.flags.contains(.metadata) {
            let total: UInt32 = try reader.read()
            guard Int(total) <= maximumMetadataBytes else {
                throw FrameError(
                    callID: frame.callID,
                    error: RPCError(.resourceExhausted, "metadata of \(total) bytes is over the limit of \(maximumMetadataBytes)"),
                    fatal: Int(total) > reader.remaining,  // unparseable past it: the frame is cut short
                    kind: frame.kind)
            }
            guard Int(total) <= reader.remaining else { throw ByteReader.Truncated() }
            let end = reader.offset + Int(total)
            while reader.offset < end {
                let keyLength: UInt8 = try reader.read()
                guard let key = try reader.readUTF8(count: Int(keyLength)) else { throw notUTF8("a metadata key") }
                let valueLength: UInt16 = try reader.read()
                guard let value = try reader.readUTF8(count: Int(valueLength)) else { throw notUTF8("a metadata value") }
                frame.metadata.entries.append((key: key, value: value))
            }
            guard reader.offset == end else { throw ByteReader.Truncated() }
        }
        frame.payload = reader.readRest()
    }
}

/// Builds frame headers in buffers of the connection's transport.
public struct FrameWriter {
    /// Allocates header buffers.
    public let allocate: (Int) -> WritableBuffer

    /// A writer over `allocate` (usually a transport's ``Transport/allocateBuffer(capacity:)``).
    public init(allocate: @escaping (Int) -> WritableBuffer) { self.allocate = allocate }

    private func header(_ kind: FrameKind, _ flags: FrameFlags, _ callID: UInt64, extra: Int) -> WritableBuffer {
        var buffer = allocate(RPCWire.headerSize + extra)
        buffer.append(bigEndian: RPCWire.version)
        buffer.append(bigEndian: kind.rawValue)
        buffer.append(bigEndian: flags.rawValue)
        buffer.append(bigEndian: callID)
        return buffer
    }

    /// The head of a request or one-way frame; the payload follows as the frame's body.
    public func call(
        _ kind: FrameKind, callID: UInt64, method: MethodKey, timeoutNanoseconds: UInt64?, metadata: RPCMetadata
    ) -> Message {
        var flags: FrameFlags = []
        var extra = 4
        if case .name(let name) = method {
            flags.insert(.methodName)
            extra = 1 + min(name.utf8.count, 255)
        }
        if timeoutNanoseconds != nil { flags.insert(.deadline); extra += 8 }
        if !metadata.isEmpty { flags.insert(.metadata); extra += 4 + metadata.encodedSize }
        var buffer = header(kind, flags, callID, extra: extra)
        switch method {
        case .id(let id):
            buffer.append(bigEndian: id)
        case .name(let name):
            let bytes = name.utf8.prefix(255)
            buffer.append(bigEndian: UInt8(bytes.count))
            buffer.append(contentsOf: bytes)
        }
        if let timeoutNanoseconds { buffer.append(bigEndian: timeoutNanoseconds) }
        if !metadata.isEmpty {
            buffer.append(bigEndian: UInt32(metadata.encodedSize))
            for (key, value) in metadata.entries {
                buffer.append(bigEndian: UInt8(key.utf8.count))
                buffer.append(contentsOf: key.utf8)
                buffer.append(bigEndian: UInt16(value.utf8.count))
                buffer.append(contentsOf: value.utf8)
            }
        }
        return buffer.freeze()
    }

    /// The head of a response; the payload follows as the body.
    public func response(callID: UInt64) -> Message {
        header(.response, [], callID, extra: 0).freeze()
    }

    /// An error or go-away frame (the message is cut to 1,024 bytes).
    public func status(_ kind: FrameKind, callID: UInt64, _ error: RPCError) -> Message {
        let text = Array(error.message.utf8.prefix(1024))
        var buffer = header(kind, [], callID, extra: 4 + text.count)
        buffer.append(bigEndian: error.code.rawValue)
        buffer.append(bigEndian: UInt16(text.count))
        buffer.append(contentsOf: text)
        return buffer.freeze()
    }

    /// A frame with no body: cancel, ping, pong.
    public func bare(_ kind: FrameKind, callID: UInt64) -> Message {
        header(kind, [], callID, extra: 0).freeze()
    }

    /// A hello frame.
    public func hello(_ limits: HelloLimits) -> Message {
        var buffer = header(.hello, [], 0, extra: 14)
        buffer.append(contentsOf: RPCWire.magic)
        buffer.append(bigEndian: RPCWire.version)
        buffer.append(bigEndian: RPCWire.version)
        buffer.append(bigEndian: limits.maximumConcurrentCalls)
        buffer.append(bigEndian: limits.maximumMetadataBytes)
        return buffer.freeze()
    }
}
