import MeshExtension
import Testing

/// The SNI and SPIFFE vectors of SPIFFEAndSNITests, through the `CONSUL_SERVICE_UPSTREAMS` syntax
/// (docs/COMPATIBILITY.md, The extension), and that syntax's rules.
@Suite struct UpstreamTests {
    static let tdA = "ba471007-78d1-3261-2e02-24258f2cb341.consul"
    static let tdB = "11111111-2222-3333-4444-555555555555.consul"

    struct Vector: Sendable, CustomTestStringConvertible {
        var input: String
        var trustDomain: String
        var sni: String
        var spiffe: String
        var testDescription: String { input }
    }

    static let vectors: [Vector] = [
        Vector(input: "test-service:1234", trustDomain: tdA, sni: "test-service.default.dc1.internal.\(tdA)", spiffe: "spiffe://\(tdA)/ns/default/dc/dc1/svc/test-service"),
        Vector(input: "test-service.ns1:1234", trustDomain: tdA, sni: "test-service.ns1.dc1.internal.\(tdA)", spiffe: "spiffe://\(tdA)/ns/ns1/dc/dc1/svc/test-service"),
        Vector(input: "test-service.ns1.ap1:1234", trustDomain: tdA, sni: "test-service.ns1.ap1.dc1.internal-v1.\(tdA)", spiffe: "spiffe://\(tdA)/ap/ap1/ns/ns1/dc/dc1/svc/test-service"),
        Vector(input: "test-service.ns1.ap1:1234:dc2", trustDomain: tdA, sni: "test-service.ns1.ap1.dc2.internal-v1.\(tdA)", spiffe: "spiffe://\(tdA)/ap/ap1/ns/ns1/dc/dc2/svc/test-service"),
        Vector(input: "test-service.default.default:1234", trustDomain: tdA, sni: "test-service.default.dc1.internal.\(tdA)", spiffe: "spiffe://\(tdA)/ns/default/dc/dc1/svc/test-service"),
        Vector(input: "orders:9000", trustDomain: tdB, sni: "orders.default.dc1.internal.\(tdB)", spiffe: "spiffe://\(tdB)/ns/default/dc/dc1/svc/orders"),
        Vector(input: "thumbnails:9001:dc1", trustDomain: tdB, sni: "thumbnails.default.dc1.internal.\(tdB)", spiffe: "spiffe://\(tdB)/ns/default/dc/dc1/svc/thumbnails"),
    ]

    @Test(arguments: vectors)
    func goldenVectors(_ vector: Vector) throws {
        let upstream = try Upstream(parsing: vector.input, defaultDatacenter: "dc1")
        #expect(upstream.sni(trustDomain: vector.trustDomain) == vector.sni)
        #expect(upstream.spiffeID(trustDomain: vector.trustDomain).description == vector.spiffe)
    }

    @Test(arguments: [
        ("test-service", "invalid service format"),
        ("invalid:port", "invalid service port"),
        ("orders:0", "invalid service port"),
        ("orders:65536", "invalid service port"),
        ("a.b.c.d:1", "invalid service format"),
        ("orders..x:1", "invalid service format"),
        ("orders:1:dc1:extra", "invalid service format"),
        ("ord/ers:1", "invalid service format"),
        ("orders:1:", "invalid service datacenter"),
    ])
    func malformedUpstreamsAreRefused(_ input: String, _ reason: String) {
        #expect(throws: Upstream.ParseError(input: input, reason: reason)) {
            try Upstream(parsing: input, defaultDatacenter: "dc1")
        }
    }

    @Test func theDefaultDatacenterIsTheConfiguredOne() throws {
        let upstream = try Upstream(parsing: "orders:9000", defaultDatacenter: "eu1")
        #expect(upstream.sni(trustDomain: Self.tdB) == "orders.default.eu1.internal.\(Self.tdB)")
    }

    @Test func aListSkipsBlanksAndRefusesADuplicatePort() throws {
        let list = try Upstream.parseList(" orders:9000, ,billing.sales:9001:dc2 ", defaultDatacenter: "dc1")
        #expect(list.map(\.description) == ["orders:9000:dc1", "billing.sales:9001:dc2"])
        #expect(throws: Upstream.ParseError.self) { try Upstream.parseList("orders:9000,billing:9000", defaultDatacenter: "dc1") }
    }
}
