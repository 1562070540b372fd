/// The caller's trace, carried into the Invoke call as `X-Amzn-Trace-Id` so that the function's
/// X-Ray segment joins it (the mapping AWS's X-Ray propagators use). In order, the first that
/// parses wins:
///
/// 1. W3C `traceparent` (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`);
/// 2. B3, single (`b3: <trace id>-<span id>[-<sampling>[-<parent span id>]]`) or multi
///    (`X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`, `X-B3-Flags`), what Consul's Envoy sidecars
///    propagate; a 16-digit trace id is padded to 32 with zeros on the left;
/// 3. the caller's own `X-Amzn-Trace-Id`: its `Root`, `Parent` and `Sampled`, nothing else.
///
/// A trace id `0123456789abcdef0123456789abcdef` with parent `00f067aa0ba902b7`, sampled, becomes
/// `Root=1-01234567-89abcdef0123456789abcdef;Parent=00f067aa0ba902b7;Sampled=1`; with no sampling
/// decision (B3 without one), `Sampled=?`, X-Ray's "decide downstream". A malformed header is
/// ignored, never refused: tracing must not fail a request.
public struct TraceContext: Sendable, Hashable {
    /// What the Invoke call sends as `X-Amzn-Trace-Id`.
    public var amazonTraceHeader: String
    /// The trace id for logs (`%TRACE_ID%`): the 32 hex digits, or the `Root` of a caller's own
    /// `X-Amzn-Trace-Id` (`1-<8 hex>-<24 hex>`).
    public var traceID: String

    /// The longest caller's `X-Amzn-Trace-Id` read (X-Ray's own header is about 100 bytes with
    /// `Lineage`; this leaves room for a few fields more and no more).
    public static let maximumCallerHeaderBytes = 256

    public init(amazonTraceHeader: String, traceID: String) {
        self.amazonTraceHeader = amazonTraceHeader
        self.traceID = traceID
    }

    /// The same trace with no sampling decision (`Sampled=?`): X-Ray's own sampling rules decide,
    /// whatever the caller asked for.
    public var withoutSamplingDecision: TraceContext {
        let fields = amazonTraceHeader.split(separator: ";").filter { !$0.hasPrefix("Sampled=") }
        return TraceContext(amazonTraceHeader: (fields + ["Sampled=?"]).joined(separator: ";"), traceID: traceID)
    }

    /// The trace of a request with `headers`, or nil when it carries none that parses.
    public init?(headers: [HTTPField]) {
        var traceparent: String?
        var b3: String?
        var b3TraceID: String?
        var b3SpanID: String?
        var b3Sampled: String?
        var b3Flags: String?
        var amazon: String?
        // One pass; most requests carry none of these, and a name's first byte rules most out.
        for field in headers {
            guard let first = field.name.utf8.first else { continue }
            switch first | 0x20 {
            case UInt8(ascii: "t"):
                if traceparent == nil, field.name.asciiCaseInsensitiveEquals("traceparent") { traceparent = field.value }
            case UInt8(ascii: "b"):
                if b3 == nil, field.name.asciiCaseInsensitiveEquals("b3") { b3 = field.value }
            case UInt8(ascii: "x"):
                let name = field.name
                if name.asciiCaseInsensitiveEquals("x-amzn-trace-id") {
                    if amazon == nil { amazon = field.value }
                } else if Self.hasB3Prefix(name) {
                    switch name.lowercased() {
                    case "x-b3-traceid": if b3TraceID == nil { b3TraceID = field.value }
                    case "x-b3-spanid": if b3SpanID == nil { b3SpanID = field.value }
                    case "x-b3-sampled": if b3Sampled == nil { b3Sampled = field.value }
                    case "x-b3-flags": if b3Flags == nil { b3Flags = field.value }
                    default: break
                    }
                }
            default:
                continue
            }
        }
        if let traceparent, let context = Self.w3c(traceparent) {
            self = context
        } else if let b3, let context = Self.b3Single(b3) {
            self = context
        } else if let b3TraceID, let b3SpanID, let context = Self.b3Multi(traceID: b3TraceID, spanID: b3SpanID, sampled: b3Sampled, flags: b3Flags) {
            self = context
        } else if let amazon, let context = Self.amazon(amazon) {
            self = context
        } else {
            return nil
        }
    }

    // MARK: The formats

    /// W3C Trace Context `traceparent`. Version `00` is exactly 55 characters; a later version may
    /// add fields after a `-` (read as version 00); `ff` is invalid; ids of zeros are invalid.
    static func w3c(_ value: String) -> TraceContext? {
        let bytes = Array(value.utf8)
        guard bytes.count >= 55, bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-") else { return nil }
        let version = bytes[0..<2]
        guard isLowerHex(version), !(version.elementsEqual("ff".utf8)) else { return nil }
        if version.elementsEqual("00".utf8) {
            guard bytes.count == 55 else { return nil }
        } else if bytes.count > 55 {
            guard bytes[55] == UInt8(ascii: "-") else { return nil }
        }
        let traceID = bytes[3..<35]
        let parentID = bytes[36..<52]
        let flags = bytes[53..<55]
        guard isLowerHex(traceID), isLowerHex(parentID), isLowerHex(flags), !isZeros(traceID), !isZeros(parentID) else { return nil }
        let sampled = (hexValue(flags[53]) << 4 | hexValue(flags[54])) & 1 == 1
        return make(traceID: String(decoding: traceID, as: UTF8.self), parentID: String(decoding: parentID, as: UTF8.self), sampled: sampled)
    }

    /// B3 single header. `0`, `1` or `d` alone (a sampling decision without ids) carries no trace.
    static func b3Single(_ value: String) -> TraceContext? {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 2, parts.count <= 4 else { return nil }
        var sampled: Bool?
        if parts.count >= 3 {
            switch parts[2] {
            case "1", "d": sampled = true
            case "0": sampled = false
            default: return nil
            }
        }
        if parts.count == 4, !(parts[3].utf8.count == 16 && isLowerHex(parts[3].utf8)) { return nil }
        return b3(traceID: parts[0], spanID: parts[1], sampled: sampled)
    }

    /// B3 multi headers; `X-B3-Flags: 1` (debug) means sampled.
    static func b3Multi(traceID: String, spanID: String, sampled: String?, flags: String?) -> TraceContext? {
        var decision: Bool?
        switch sampled?.lowercased() {
        case "1", "true": decision = true
        case "0", "false": decision = false
        case nil: decision = nil
        default: return nil
        }
        if flags == "1" { decision = true }
        return b3(traceID: Substring(traceID), spanID: Substring(spanID), sampled: decision)
    }

    private static func b3(traceID: Substring, spanID: Substring, sampled: Bool?) -> TraceContext? {
        guard traceID.utf8.count == 32 || traceID.utf8.count == 16, spanID.utf8.count == 16 else { return nil }
        guard isLowerHex(traceID.utf8), isLowerHex(spanID.utf8), !isZeros(traceID.utf8), !isZeros(spanID.utf8) else { return nil }
        let full = traceID.utf8.count == 16 ? String(repeating: "0", count: 16) + traceID : String(traceID)
        return make(traceID: full, parentID: String(spanID), sampled: sampled)
    }

    /// The caller's own `X-Amzn-Trace-Id`, rebuilt from its `Root` (`1-<8 hex>-<24 hex>`,
    /// required), `Parent` (16 hex) and `Sampled` (`0`, `1` or `?`); a malformed `Parent` or
    /// `Sampled` is left out, and every other field (`Self`, `Lineage`, anything made up) is dropped:
    /// only what X-Ray needs to join the trace goes to AWS.
    static func amazon(_ value: String) -> TraceContext? {
        guard value.utf8.count <= maximumCallerHeaderBytes else { return nil }
        var root: Substring?
        var parent: Substring?
        var sampled: Substring?
        for field in value.split(separator: ";") {
            let field = field.drop { $0 == " " }
            guard let equals = field.firstIndex(of: "=") else { continue }
            let (key, fieldValue) = (field[..<equals], field[field.index(after: equals)...])
            switch key {
            case "Root" where root == nil: root = fieldValue
            case "Parent" where parent == nil: parent = fieldValue
            case "Sampled" where sampled == nil: sampled = fieldValue
            default: continue
            }
        }
        guard let root, isXRayRoot(root) else { return nil }
        var header = "Root=\(root)"
        if let parent, parent.utf8.count == 16, isLowerHex(parent.utf8) { header += ";Parent=\(parent)" }
        if let sampled, sampled == "0" || sampled == "1" || sampled == "?" { header += ";Sampled=\(sampled)" }
        return TraceContext(amazonTraceHeader: header, traceID: String(root))
    }

    /// `1-<8 hex>-<24 hex>`, lower-case.
    static func isXRayRoot(_ root: Substring) -> Bool {
        let bytes = Array(root.utf8)
        return bytes.count == 35 && bytes[0] == UInt8(ascii: "1") && bytes[1] == UInt8(ascii: "-") && bytes[10] == UInt8(ascii: "-")
            && isLowerHex(bytes[2..<10]) && isLowerHex(bytes[11..<35])
    }

    private static func make(traceID: String, parentID: String, sampled: Bool?) -> TraceContext {
        let root = "1-" + traceID.prefix(8) + "-" + traceID.dropFirst(8)
        let decision = sampled.map { $0 ? "1" : "0" } ?? "?"
        return TraceContext(amazonTraceHeader: "Root=\(root);Parent=\(parentID);Sampled=\(decision)", traceID: traceID)
    }

    /// `x-b3-` in any case, without lower-casing the name (most `x-` names are not B3's).
    private static func hasB3Prefix(_ name: String) -> Bool {
        let bytes = name.utf8
        guard bytes.count > 5 else { return false }
        return zip(bytes, "x-b3-".utf8).allSatisfy { $0 | 0x20 == $1 | 0x20 }
    }

    // MARK: Hex

    private static func isLowerHex<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> Bool {
        bytes.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }

    private static func isZeros<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> Bool {
        bytes.allSatisfy { $0 == UInt8(ascii: "0") }
    }

    private static func hexValue(_ byte: UInt8) -> UInt8 {
        byte <= UInt8(ascii: "9") ? byte - UInt8(ascii: "0") : byte - UInt8(ascii: "a") + 10
    }
}
