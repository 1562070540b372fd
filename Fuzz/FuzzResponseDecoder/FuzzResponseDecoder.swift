// libFuzzer target: a function result (the Invoke answer's payload) mapped to the client's response
// (docs/COMPATIBILITY.md, Function results), in both payload formats, for GET and HEAD. Mapping may refuse a result; what
// it returns must be a response the gateway can write safely.
import FuzzSupport
import LambdaPayload
import NIOCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let payload = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    let result = LambdaInvocationResult(statusCode: 200, requestID: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", payload: payload)
    for format in PayloadFormat.allCases {
        for method in ["GET", "HEAD"] {
            guard let response = try? ResponseDecoder.response(for: result, format: format, passthrough: false, method: method) else { continue }
            check(response, method: method)
        }
    }
    return 0
}

func check(_ response: LambdaHTTPResponse, method: String) {
    precondition((100...599).contains(response.status), "status \(response.status)")
    for field in response.headers {
        precondition(HTTPField.isToken(field.name) && field.name == field.name.lowercased(), "header name \(field.name.debugDescription)")
        precondition(!field.value.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }, "header value \(field.value.debugDescription)")
        precondition(field.name != "content-length" && field.name != "transfer-encoding", "framing header \(field.name) from the function")
    }
    if method == "HEAD" || response.status == 204 || response.status == 304 {
        precondition(response.body.readableBytes == 0, "a body on a \(method) \(response.status)")
    }
}

@_cdecl("FuzzResponseDecoder_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}
