// libFuzzer target: an HTTP/2 request's header block, and optionally its trailers, as a client sends
// them. The gateway checks their fields itself (`HTTP2FieldRules`, in
// `HTTP2StreamStateMachine.requestHead`), with NIO's own check turned off; the same blocks go
// through NIO's HTTP/2 server handler with its check on. Both must refuse the same blocks.
//
// Input: fields separated by 0xFE, each `name 0xFD value` (a field without 0xFD has an empty
// value); a 0xFC starts the trailers, which follow a body byte.
import FuzzSupport
import NIOHPACK
import TestSupport

@testable import GatewayCore

func fields(_ bytes: ArraySlice<UInt8>) -> [(String, String)] {
    bytes.split(separator: 0xFE, omittingEmptySubsequences: false).compactMap { field in
        guard !field.isEmpty else { return nil }
        let parts = field.split(separator: 0xFD, maxSplits: 1, omittingEmptySubsequences: false)
        return (String(decoding: parts[0], as: UTF8.self), parts.count > 1 ? String(decoding: parts[1], as: UTF8.self) : "")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let parts = bytes.split(separator: 0xFC, maxSplits: 1, omittingEmptySubsequences: false)
    let head = RawH2.block(fields(parts[0]))
    let trailers = parts.count > 1 ? RawH2.block(fields(parts[1])) : nil
    // A block NIO's decoder cannot read (over its limits) is no field question.
    guard let headHeaders = NIOHTTP2Verdict.headers(in: head) else { return 0 }
    var trailerHeaders: HPACKHeaders?
    if let trailers {
        guard let decoded = NIOHTTP2Verdict.headers(in: trailers) else { return 0 }
        trailerHeaders = decoded
    }
    let gateway = !HTTP2FieldRules.isMalformed(request: headHeaders, trailers: trailerHeaders)
    guard let nio = NIOHTTP2Verdict.accepts(head: head, trailers: trailers) else {
        preconditionFailure("NIO neither reset the stream nor passed the request on: \(fields(parts[0]))")
    }
    precondition(gateway == nio, "gateway \(gateway ? "accepts" : "refuses"), NIO \(nio ? "accepts" : "refuses"): \(fields(parts[0])) trailers \(parts.count > 1 ? "\(fields(parts[1]))" : "none")")
    return 0
}

@_cdecl("FuzzHTTP2Fields_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}
