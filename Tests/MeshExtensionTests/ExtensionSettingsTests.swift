import MeshExtension
import Testing

@Suite struct ExtensionSettingsTests {
    let minimal = ["CONSUL_MESH_GATEWAY_URI": "10.0.0.5:8443", "CONSUL_EXTENSION_DATA_PREFIX": "/lambda_extension_data", "AWS_LAMBDA_FUNCTION_NAME": "orders"]

    @Test func defaultsAreTheDocumentedOnes() throws {
        let settings = try ExtensionSettings(environment: minimal)
        #expect(settings.gatewayHost == "10.0.0.5" && settings.gatewayPort == 8443)
        #expect(settings.datacenter == "dc1" && settings.upstreams.isEmpty)
        #expect(settings.refreshFrequency == .seconds(300) && settings.proxyTimeout == .seconds(3) && settings.dialTimeout == .seconds(5))
        #expect(settings.warmConnections == 1 && !settings.traceEnabled)
        #expect(settings.parameterName == "/lambda_extension_data/default/default/orders")
    }

    @Test(arguments: ["tls://gw.example:443", "https://gw.example:443/", "gw.example:443"])
    func aSchemeOnTheGatewayIsTolerated(_ uri: String) throws {
        var environment = minimal
        environment["CONSUL_MESH_GATEWAY_URI"] = uri
        let settings = try ExtensionSettings(environment: environment)
        #expect(settings.gatewayHost == "gw.example" && settings.gatewayPort == 443)
    }

    @Test func anAliasIdentityAndScopeNameTheParameter() throws {
        var environment = minimal
        environment["CONSUL_SERVICE_NAME"] = "orders-prod"
        environment["CONSUL_SERVICE_NAMESPACE"] = "sales"
        environment["CONSUL_SERVICE_PARTITION"] = "emea"
        environment["CONSUL_EXTENSION_DATA_PREFIX"] = "/data/"
        environment["CONSUL_DATACENTER"] = "dc2"
        environment["CONSUL_SERVICE_UPSTREAMS"] = "billing:9000"
        let settings = try ExtensionSettings(environment: environment)
        #expect(settings.parameterName == "/data/emea/sales/orders-prod")
        #expect(settings.upstreams.first?.datacenter == "dc2")
    }

    @Test(arguments: [
        ("CONSUL_MESH_GATEWAY_URI", "", "CONSUL_MESH_GATEWAY_URI"),
        ("CONSUL_MESH_GATEWAY_URI", "gateway", "CONSUL_MESH_GATEWAY_URI"),
        ("CONSUL_MESH_GATEWAY_URI", "gw:99999", "CONSUL_MESH_GATEWAY_URI"),
        ("CONSUL_EXTENSION_DATA_PREFIX", "", "CONSUL_EXTENSION_DATA_PREFIX"),
        ("CONSUL_EXTENSION_DATA_PREFIX", "data", "CONSUL_EXTENSION_DATA_PREFIX"),
        ("CONSUL_SERVICE_UPSTREAMS", "orders", "CONSUL_SERVICE_UPSTREAMS"),
        ("CONSUL_REFRESH_FREQUENCY", "often", "CONSUL_REFRESH_FREQUENCY"),
        ("CONSUL_EXTENSION_PROXY_TIMEOUT", "0s", "CONSUL_EXTENSION_PROXY_TIMEOUT"),
        ("CONSUL_EXTENSION_WARM_CONNECTIONS", "-1", "CONSUL_EXTENSION_WARM_CONNECTIONS"),
        ("CONSUL_SERVICE_NAME", "a/b", "CONSUL_SERVICE_NAME"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL"),
        ("TRACE_ENABLED", "yes", "TRACE_ENABLED"),
    ])
    func badValuesNameTheirVariable(_ variable: String, _ value: String, _ named: String) {
        var environment = minimal
        environment[variable] = value
        #expect {
            _ = try ExtensionSettings(environment: environment)
        } throws: { error in
            (error as? ExtensionSettings.Error)?.variable == named
        }
    }

    @Test func withoutAFunctionNameTheServiceNameIsRequired() {
        var environment = minimal
        environment["AWS_LAMBDA_FUNCTION_NAME"] = nil
        #expect(throws: ExtensionSettings.Error.self) { try ExtensionSettings(environment: environment) }
    }
}
