import ConsulAPI
import Foundation
import TestSupport
import Testing

@Suite("Manual registration of a Lambda service", .serialized)
struct RegistrationTests {
    let orders = LambdaRegistration(service: "orders", functionARN: "arn:aws:lambda:us-east-1:123456789012:function:orders", gateway: "lambda-gateway")

    func gatewayServices(_ fixture: ConsulFixture) async throws -> [String] {
        try await fixture.client.get([GatewayService].self, "/v1/catalog/gateway-services/lambda-gateway").0.map(\.Service.Name)
    }

    @Test func registerWritesTheThreeObjectsAndIsIdempotent() async throws {
        try await ConsulFixture.with { fixture in
            var async = orders
            async.asynchronous = true
            async.payloadFormat = "apigateway-v2"
            try await fixture.client.register(async)
            try await fixture.client.register(async)

            let (defaults, _) = try await fixture.client.get(ServiceDefaults.self, "/v1/config/service-defaults/orders")
            #expect(defaults.protocolName == "http")
            let lambda = try #require(defaults.EnvoyExtensions.first)
            #expect(lambda.Name == "builtin/aws/lambda" && !lambda.Required)
            #expect(lambda.Arguments?.value(forCaseInsensitiveKey: "ARN")?.stringValue == orders.functionARN)
            #expect(lambda.Arguments?.value(forCaseInsensitiveKey: "InvocationMode")?.stringValue == "asynchronous")
            #expect(lambda.Arguments?.value(forCaseInsensitiveKey: "PayloadFormat")?.stringValue == "apigateway-v2")

            let (instances, _) = try await fixture.client.get([HealthServiceEntry].self, "/v1/health/service/orders")
            #expect(instances.count == 1)
            #expect(instances.first?.Node.Node == "lambdas" && instances.first?.Node.Meta["external-node"] == "true")

            #expect(try await gatewayServices(fixture) == ["orders"])
        }
    }

    @Test func otherGatewayFieldsAndServicesAreKept() async throws {
        try await ConsulFixture.with { fixture in
            try fixture.server.setConfigEntry(#"{"Kind":"terminating-gateway","Name":"lambda-gateway","Meta":{"owner":"platform"},"Services":[{"Name":"legacy-db","CAFile":"/etc/ca.pem"}]}"#)
            try await fixture.client.register(orders)
            let (entry, _) = try await fixture.client.get(FreeFormJSON.self, "/v1/config/terminating-gateway/lambda-gateway")
            #expect(entry.value(forCaseInsensitiveKey: "Meta")?.value(forCaseInsensitiveKey: "owner")?.stringValue == "platform")
            guard case .array(let services)? = entry.value(forCaseInsensitiveKey: "Services") else {
                Issue.record("no Services")
                return
            }
            #expect(services.compactMap { $0.value(forCaseInsensitiveKey: "Name")?.stringValue } == ["legacy-db", "orders"])
            #expect(services.first?.value(forCaseInsensitiveKey: "CAFile")?.stringValue == "/etc/ca.pem")
        }
    }

    @Test func concurrentRegistrationsAreNotLost() async throws {
        try await ConsulFixture.with { fixture in
            let names = (0..<12).map { "fn\($0)" }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for name in names {
                    group.addTask {
                        try await fixture.client.register(LambdaRegistration(service: name, functionARN: "arn:aws:lambda:us-east-1:123456789012:function:\(name)", gateway: "lambda-gateway"))
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await gatewayServices(fixture).sorted() == names.sorted())
            // Some writes must have lost their cas race and been retried.
            let configWrites = fixture.server.requests.filter { $0.method == "PUT" && $0.uri.hasPrefix("/v1/config?cas=") }
            #expect(configWrites.count >= names.count)
        }
    }

    @Test func deregisterUndoesEverythingAndIsIdempotent() async throws {
        try await ConsulFixture.with { fixture in
            let thumbnails = LambdaRegistration(service: "thumbnails", functionARN: "arn:aws:lambda:us-east-1:123456789012:function:thumbnails", gateway: "lambda-gateway")
            try await fixture.client.register(orders)
            try await fixture.client.register(thumbnails)
            try await fixture.client.deregister(orders)
            try await fixture.client.deregister(orders)
            #expect(try await gatewayServices(fixture) == ["thumbnails"])
            let missing = try await fixture.client.send(.GET, "/v1/config/service-defaults/orders", allowNotFound: true)
            #expect(missing.status == 404)
            let (instances, _) = try await fixture.client.get([HealthServiceEntry].self, "/v1/health/service/orders")
            #expect(instances.isEmpty)
        }
    }
}
