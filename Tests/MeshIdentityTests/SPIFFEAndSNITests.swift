import MeshIdentity
import Testing

let tdA = "ba471007-78d1-3261-2e02-24258f2cb341.consul"
let tdB = "11111111-2222-3333-4444-555555555555.consul"

@Suite("SNI and SPIFFE golden vectors (as Consul forms them)")
struct SPIFFEAndSNITests {
    struct Row: Sendable, CustomTestStringConvertible {
        var service: String, subset: String?, namespace: String, partition: String, datacenter: String, trustDomain: String
        var sni: String, spiffe: String
        var testDescription: String { sni }
    }

    static let rows: [Row] = [
        Row(
            service: "test-service", subset: nil, namespace: "default", partition: "default", datacenter: "dc1", trustDomain: tdA,
            sni: "test-service.default.dc1.internal.\(tdA)", spiffe: "spiffe://\(tdA)/ns/default/dc/dc1/svc/test-service"),
        Row(
            service: "test-service", subset: nil, namespace: "ns1", partition: "default", datacenter: "dc1", trustDomain: tdA,
            sni: "test-service.ns1.dc1.internal.\(tdA)", spiffe: "spiffe://\(tdA)/ns/ns1/dc/dc1/svc/test-service"),
        Row(
            service: "test-service", subset: nil, namespace: "ns1", partition: "ap1", datacenter: "dc1", trustDomain: tdA,
            sni: "test-service.ns1.ap1.dc1.internal-v1.\(tdA)", spiffe: "spiffe://\(tdA)/ap/ap1/ns/ns1/dc/dc1/svc/test-service"),
        Row(
            service: "test-service", subset: nil, namespace: "ns1", partition: "ap1", datacenter: "dc2", trustDomain: tdA,
            sni: "test-service.ns1.ap1.dc2.internal-v1.\(tdA)", spiffe: "spiffe://\(tdA)/ap/ap1/ns/ns1/dc/dc2/svc/test-service"),
        Row(
            service: "orders", subset: nil, namespace: "default", partition: "default", datacenter: "dc1", trustDomain: tdB,
            sni: "orders.default.dc1.internal.\(tdB)", spiffe: "spiffe://\(tdB)/ns/default/dc/dc1/svc/orders"),
        Row(
            service: "orders", subset: "v2", namespace: "default", partition: "default", datacenter: "dc1", trustDomain: tdB,
            sni: "v2.orders.default.dc1.internal.\(tdB)", spiffe: "spiffe://\(tdB)/ns/default/dc/dc1/svc/orders"),
        Row(
            service: "orders", subset: "v2", namespace: "sales", partition: "emea", datacenter: "dc1", trustDomain: tdB,
            sni: "v2.orders.sales.emea.dc1.internal-v1.\(tdB)", spiffe: "spiffe://\(tdB)/ap/emea/ns/sales/dc/dc1/svc/orders"),
    ]

    @Test(arguments: rows)
    func sniAndSPIFFE(row: Row) throws {
        #expect(ServiceSNI.make(service: row.service, subset: row.subset, namespace: row.namespace, partition: row.partition, datacenter: row.datacenter, trustDomain: row.trustDomain) == row.sni)
        let id = SPIFFEID(trustDomain: row.trustDomain, partition: row.partition, namespace: row.namespace, datacenter: row.datacenter, service: row.service)
        #expect(id.description == row.spiffe)
        #expect(SPIFFEID(parsing: row.spiffe) == id)
    }

    @Test func parsingVectors() throws {
        let web = try #require(SPIFFEID(parsing: "spiffe://\(tdB)/ns/default/dc/dc1/svc/web"))
        #expect(web == SPIFFEID(trustDomain: tdB, datacenter: "dc1", service: "web"))
        let billing = try #require(SPIFFEID(parsing: "spiffe://11111111-2222-3333-4444-555555555555.CONSUL/ap/emea/ns/sales/dc/dc2/svc/billing"))
        #expect(billing.isInTrustDomain(tdB))
        #expect(billing.partition == "emea" && billing.namespace == "sales" && billing.datacenter == "dc2" && billing.service == "billing")
        #expect(SPIFFEID(parsing: "spiffe://\(tdB)/gateway/mesh/dc/dc1") == nil)
        #expect(SPIFFEID(parsing: "spiffe://\(tdB)/ns/default/dc/dc1/svc/") == nil)
        #expect(SPIFFEID(parsing: "spiffe://\(tdB)/ns/default/dc/dc1/svc/web/extra") == nil)
        #expect(SPIFFEID(parsing: "spiffe://\(tdB)/agent/client/dc/dc1/id/abc") == nil)
        #expect(SPIFFEID(parsing: "spiffe://\(tdB)") == nil)
        #expect(SPIFFEID(parsing: "https://\(tdB)/ns/default/dc/dc1/svc/web") == nil)
        #expect(SPIFFEID(parsing: "spiffe://\(tdB)/ns/default/dc/dc1/svc/my%2Dsvc")?.service == "my-svc")
    }

    @Test func aSegmentStartingWithACombiningMarkPrintsAsAnIDThatParsesBack() throws {
        // Found by FuzzSPIFFE: the decoded service begins with U+0313, which joins the '/' before
        // it into one Character; splitting the printed form by Characters lost that '/'.
        let id = try #require(SPIFFEID(parsing: "spiffe://Wl/ns/d%65/dc/0/svc/%Cc%93%C3%a4"))
        #expect(id.service.unicodeScalars.first == "\u{313}")
        #expect(SPIFFEID(parsing: id.description) == id)
        #expect(SPIFFEID(parsing: id.description)?.service.utf8.elementsEqual(id.service.utf8) == true)
    }

    @Test func sniComparisonForm() {
        #expect(ServiceSNI.normalize("Orders.Default.DC1.internal.\(tdB).") == "orders.default.dc1.internal.\(tdB)")
    }
}

@Suite struct ASCIICaseFoldingTests {
    @Test func sniAndTrustDomainFoldASCIIOnly() {
        #expect(ServiceSNI.normalize("ORDERS.Default.DC1.internal.TD.consul.") == "orders.default.dc1.internal.td.consul")
        // The Kelvin sign is not `k`, though Unicode lower-cases it so.
        #expect(ServiceSNI.normalize("\u{212A}afka.default.dc1.internal.td.consul") != "kafka.default.dc1.internal.td.consul")
        let id = SPIFFEID(trustDomain: "k.consul", datacenter: "dc1", service: "web")
        #expect(id.isInTrustDomain("K.CONSUL"))
        #expect(!id.isInTrustDomain("\u{212A}.consul"))
    }
}
