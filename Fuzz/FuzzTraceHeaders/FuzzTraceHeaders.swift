// libFuzzer target: a request's trace headers (`traceparent`, `b3`, `X-B3-*`, `X-Amzn-Trace-Id`) as
// `TraceContext` reads them. The input is header lines, `name: value`. What it makes goes out to AWS
// as a header and into the access log: X-Ray's fields, well formed, and nothing a caller slipped in.
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
    // Always X-Ray's fields and nothing else: Root=1-<8>-<24>[;Parent=<16>][;Sampled=0|1|?], hex lower-case.
    let isHex = { (text: Substring) in text.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) } }
    let parts = context.amazonTraceHeader.split(separator: ";", omittingEmptySubsequences: false)
    precondition(parts.count <= 3 && parts[0].hasPrefix("Root=1-"), "\(context.amazonTraceHeader)")
    let root = parts[0].dropFirst(5)
    precondition(root.utf8.count == 35 && isHex(root.dropFirst(2).prefix(8)) && root.dropFirst(10).first == "-" && isHex(root.dropFirst(11)), "\(context.amazonTraceHeader)")
    for field in parts.dropFirst() {
        if field.hasPrefix("Parent=") {
            precondition(field.utf8.count == 23 && isHex(field.dropFirst(7)), "\(context.amazonTraceHeader)")
        } else {
            precondition(field == "Sampled=0" || field == "Sampled=1" || field == "Sampled=?", "\(context.amazonTraceHeader)")
        }
    }
    // The trace id for logs is the root's digits (traceparent, B3) or the root itself (a caller's X-Ray header).
    let digits = root.dropFirst(2).filter { $0 != "-" }
    precondition(context.traceID == String(digits) || context.traceID == String(root), "\(context.traceID) for \(context.amazonTraceHeader)")
    return 0
}

@_cdecl("FuzzTraceHeaders_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}
