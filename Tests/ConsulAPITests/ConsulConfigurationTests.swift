import ConsulAPI
import Testing

@Suite("Consul client configuration from CONSUL_* variables")
struct ConsulConfigurationTests {
    @Test func defaultsToTheLocalAgent() throws {
        let config = try ConsulConfiguration(environment: [:])
        #expect(config.baseURL == "http://127.0.0.1:8500")
        #expect(config.token == .none && config.verifyTLS)
    }

    @Test(arguments: [
        ("127.0.0.1:8500", nil as String?, "http://127.0.0.1:8500"),
        ("http://consul.service:8500", nil, "http://consul.service:8500"),
        ("https://c.example:8501/consul/", nil, "https://c.example:8501/consul"),
        ("c.example:8501", "true", "https://c.example:8501"),
        ("c.example", "1", "https://c.example:443"),
        ("c.example", nil, "http://c.example:80"),
        ("[::1]:8500", nil, "http://[::1]:8500"),
        ("unix:///var/run/consul.sock", nil, "http+unix://%2Fvar%2Frun%2Fconsul.sock"),
    ])
    func addressForms(address: String, ssl: String?, url: String) throws {
        var environment = ["CONSUL_HTTP_ADDR": address]
        environment["CONSUL_HTTP_SSL"] = ssl
        #expect(try ConsulConfiguration(environment: environment).baseURL == url)
    }

    @Test(arguments: ["ftp://c:1", "c.example:99999", "c.example:abc", "[::1:8500", "unix://relative.sock", ":8500"])
    func invalidAddresses(address: String) {
        #expect(throws: ConsulConfiguration.Error.self) { try ConsulConfiguration(environment: ["CONSUL_HTTP_ADDR": address]) }
    }

    @Test func tokenFileWinsOverTokenAndFlagsWinOverVariables() throws {
        let both = try ConsulConfiguration(environment: ["CONSUL_HTTP_TOKEN": "t", "CONSUL_HTTP_TOKEN_FILE": "/run/token"])
        #expect(both.token == .file("/run/token"))
        let overridden = try ConsulConfiguration(environment: ["CONSUL_HTTP_ADDR": "a:1", "CONSUL_HTTP_TOKEN": "env"], overrides: ["CONSUL_HTTP_ADDR": "b:2", "CONSUL_HTTP_TOKEN": "flag"])
        #expect(overridden.baseURL == "http://b:2" && overridden.token == .value("flag"))
    }

    @Test func tlsSettings() throws {
        let config = try ConsulConfiguration(environment: [
            "CONSUL_HTTP_ADDR": "https://consul:8501", "CONSUL_CACERT": "/ca.pem", "CONSUL_CAPATH": "/cas", "CONSUL_CLIENT_CERT": "/c.pem",
            "CONSUL_CLIENT_KEY": "/k.pem", "CONSUL_TLS_SERVER_NAME": "server.dc1.consul", "CONSUL_HTTP_SSL_VERIFY": "F",
            "CONSUL_NAMESPACE": "team", "CONSUL_PARTITION": "ap1", "CONSUL_HTTP_AUTH": "user:pass",
        ])
        #expect(config.caFile == "/ca.pem" && config.caPath == "/cas" && config.clientCertificate == "/c.pem" && config.clientKey == "/k.pem")
        #expect(config.tlsServerName == "server.dc1.consul" && !config.verifyTLS)
        #expect(config.namespace == "team" && config.partition == "ap1" && config.basicAuth == "user:pass")
    }

    @Test func halfAClientCertificateIsAnError() {
        #expect(throws: ConsulConfiguration.Error.self) { try ConsulConfiguration(environment: ["CONSUL_CLIENT_CERT": "/c.pem"]) }
        #expect(throws: ConsulConfiguration.Error.self) { try ConsulConfiguration(environment: ["CONSUL_CLIENT_KEY": "/k.pem"]) }
    }

    @Test func booleansFollowGo() {
        #expect(throws: ConsulConfiguration.Error.self) { try ConsulConfiguration(environment: ["CONSUL_HTTP_SSL": "yes"]) }
        #expect(throws: ConsulConfiguration.Error.self) { try ConsulConfiguration(environment: ["CONSUL_HTTP_SSL_VERIFY": "off"]) }
    }
}
