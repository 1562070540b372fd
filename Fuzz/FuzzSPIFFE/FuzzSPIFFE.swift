// libFuzzer target: a client certificate's URI SAN as `SPIFFEID(parsing:)` reads it
// (see `SPIFFEID`). Crashes, and a parsed ID that does not survive its own text, fail.
import FuzzSupport
import MeshIdentity

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let id = SPIFFEID(parsing: text) else { return 0 }
    let segments = [id.partition, id.namespace, id.datacenter, id.service]
    precondition(segments.allSatisfy { !$0.isEmpty }, "an accepted ID has an empty segment: \(text)")
    // Percent-decoding can produce '/' or '%', which the printed form does not escape again; any
    // other accepted ID is printed as one that parses back to itself.
    if !segments.contains(where: { $0.contains("/") || $0.contains("%") }) {
        precondition(SPIFFEID(parsing: id.description) == id, "\(text) prints as \(id.description), which parses differently")
    }
    _ = id.isInTrustDomain("11111111-2222-3333-4444-555555555555.consul")
    return 0
}

@_cdecl("FuzzSPIFFE_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}
