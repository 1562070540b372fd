// libFuzzer target: a request's trace headers (`traceparent`, `b3`, `X-B3-*`, `X-Amzn-Trace-Id`) as
// `TraceContext` reads them. The input is header lines, `name: value`. What it makes goes out to AWS
// as a header and into the access log: it must be visible ASCII, short, and well formed.
import FuzzSupport
import LambdaPayload

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let fields = text.split(separator: "\n", omittingEmptySubsequences: true).prefix(16).map { line in
        let parts = line.split(separator: ":", maxSplits: 1)
        return HTTPField(String(parts.first ?? ""), parts.count > 1 ? String(parts[1].drop { $0 == " " }) : "")
    }
    guard let context = TraceContext(headers: fields) else { return 0 }
    let header = context.amazonTraceHeader.utf8
    precondition(!header.isEmpty && header.count <= TraceContext.maximumPassedHeaderBytes, "header of \(header.count) bytes")
    precondition(header.allSatisfy { (0x21...0x7E).contains($0) }, "\(context.amazonTraceHeader) is not visible ASCII")
    let isHex = { (text: String) in text.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) } }
    if context.amazonTraceHeader.hasPrefix("Root=1-"), let traceID = context.traceID, traceID.utf8.count == 32, isHex(traceID) {
        // Made from traceparent or B3: exactly the X-Ray mapping of the trace id.
        let expected = "Root=1-\(traceID.prefix(8))-\(traceID.dropFirst(8));Parent="
        precondition(context.amazonTraceHeader.hasPrefix(expected), "\(context.amazonTraceHeader) for \(traceID)")
    } else {
        // Passed on as the caller sent it: one of the fields' values, unchanged.
        precondition(fields.contains { $0.value == context.amazonTraceHeader }, "\(context.amazonTraceHeader) was made up")
    }
    return 0
}

@_cdecl("FuzzTraceHeaders_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}
