// libFuzzer target: the first bytes of a mesh connection as the listener reads them (docs/ARCHITECTURE.md,
// Accept and TLS): NIO's SNIHandler parses the ClientHello, and the name it finds is normalized and looked up
// the way the gateway selects a service (docs/COMPATIBILITY.md, SNIs and certificates).
import FuzzSupport
import MeshIdentity
import NIOCore
import NIOEmbedded
import NIOTLS

/// SNI → service, as a snapshot holds it (the golden vectors of Tests/MeshIdentityTests/SPIFFEAndSNITests.swift).
let sniTable: [String: String] = {
    let tdA = "ba471007-78d1-3261-2e02-24258f2cb341.consul"
    let tdB = "11111111-2222-3333-4444-555555555555.consul"
    return [
        ServiceSNI.make(service: "test-service", datacenter: "dc1", trustDomain: tdA): "test-service",
        ServiceSNI.make(service: "test-service", namespace: "ns1", partition: "ap1", datacenter: "dc2", trustDomain: tdA): "ap1/ns1/test-service",
        ServiceSNI.make(service: "orders", datacenter: "dc1", trustDomain: tdB): "orders",
        ServiceSNI.make(service: "orders", subset: "v2", namespace: "sales", partition: "emea", datacenter: "dc1", trustDomain: tdB): "emea/sales/orders",
    ]
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let channel = EmbeddedChannel()
    var results: [SNIResult] = []
    let handler = SNIHandler { result in
        results.append(result)
        return channel.eventLoop.makeSucceededVoidFuture()
    }
    try! channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(handler))
    _ = try? channel.writeInbound(ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size)))
    _ = try? channel.finish()
    precondition(results.count <= 1, "SNI reported \(results.count) times")
    if case .hostname(let name)? = results.first {
        let key = ServiceSNI.normalize(name)
        precondition(!key.hasSuffix(".") || name.hasSuffix(".."), "\(name) normalizes to \(key)")
        if let service = sniTable[key] {
            precondition(key == name.lowercased() || key + "." == name.lowercased(), "\(name) selects \(service)")
        }
    }
    return 0
}

@_cdecl("FuzzSNI_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}
