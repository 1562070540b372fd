// libFuzzer target: Go duration text as Consul prints it in config entries (Go's `time.ParseDuration`),
// read for the service-resolver RequestTimeout and the static file's requestTimeout.
import ConsulAPI
import FuzzSupport

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let duration = try? GoDuration.parse(text) else { return 0 }
    if text.hasPrefix("-") {
        precondition(duration <= .zero, "\(text) is negative but parsed as \(duration)")
    } else {
        precondition(duration >= .zero, "\(text) parsed as \(duration)")
    }
    _ = GoDuration.milliseconds(duration)
    return 0
}

@_cdecl("FuzzGoDuration_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}
