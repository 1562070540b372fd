// libFuzzer target: the static configuration file (`run --config`) as its text, read against a
// directory holding the certificates conf/gateway.example.yaml names, then turned into the served
// snapshot as a reload would.
import Foundation
import FuzzSupport
import GatewayCore
import TestSupport

let trustDomain = "11111111-2222-3333-4444-555555555555.consul"

/// certs/ as the example file expects it: the mesh CA and the leaves of orders and thumbnails.
let directory: TemporaryDirectory = {
    do {
        let directory = try TemporaryDirectory()
        let ca = try TestCA(commonName: "mesh")
        _ = try FileManager.default.createDirectory(at: directory.url.appendingPathComponent("certs"), withIntermediateDirectories: true)
        _ = try directory.file("certs/consul-ca.pem", contents: try ca.pem)
        for service in ["orders", "thumbnails"] {
            let leaf = try ca.issueLeaf(commonName: service, dnsNames: [], ipAddresses: [], uris: ["spiffe://\(trustDomain)/ns/default/dc/dc1/svc/\(service)"])
            _ = try directory.file("certs/\(service).pem", contents: try leaf.certificatePEM)
            _ = try directory.file("certs/\(service)-key.pem", contents: leaf.keyPEM)
        }
        return directory
    } catch {
        fatalError("cannot write the certificates: \(error)")
    }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let config = try? StaticConfigFile.parse(text, file: "gateway.yaml", directory: directory.url) else { return 0 }
    guard let snapshot = try? config.snapshot(version: 1, now: Date()) else { return 0 }
    for (key, service) in snapshot.services {
        precondition(service.snis.allSatisfy { snapshot.service(forSNI: $0)?.name == service.name }, "an SNI of \(key) selects another service")
    }
    return 0
}

@_cdecl("FuzzStaticConfig_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    // The certificates are written before the first input and removed when libFuzzer exits.
    _ = directory
    atexit { directory.remove() }
    return runLibFuzzer(argc, argv, fuzz)
}
