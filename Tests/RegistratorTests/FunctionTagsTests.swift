import ConsulAPI
import Foundation
import Registrator
import Testing

@Suite struct FunctionTagsTests {
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:orders"
    let community = FunctionTags.Context(datacenter: "dc1")

    func intent(_ tags: [String: String], aliases: Set<String>? = nil, context: FunctionTags.Context? = nil) -> (FunctionIntent, [String]) {
        let result = FunctionTags.intent(function: "orders", arn: arn, tags: tags, existingAliases: aliases, context: context ?? community)
        return (result.intent, result.warnings)
    }

    func enabledServices(_ intent: FunctionIntent) -> [DesiredService]? {
        if case .enabled(let services) = intent { return services }
        return nil
    }

    @Test(arguments: ["true"])
    func exactlyTrueEnables(_ value: String) throws {
        let services = try #require(enabledServices(intent([FunctionTags.enabled: value]).0))
        #expect(services == [DesiredService(name: "orders", function: "orders", arguments: LambdaArguments(arn: arn))])
    }

    @Test(arguments: ["TRUE", "True", "yes", "1", "", " true"])
    func anythingElseDisables(_ value: String) {
        #expect(intent([FunctionTags.enabled: value]).0 == .disabled)
    }

    @Test func untaggedFunctionIsDisabled() {
        #expect(intent([:]).0 == .disabled)
    }

    @Test(arguments: [("asynchronous", LambdaArguments.InvocationMode.asynchronous), ("ASYNCHRONOUS", .asynchronous), ("Synchronous", .synchronous)])
    func invocationModeIsCaseInsensitive(_ value: String, _ mode: LambdaArguments.InvocationMode) throws {
        let services = try #require(enabledServices(intent([FunctionTags.enabled: "true", FunctionTags.invocationMode: value]).0))
        #expect(services.first?.arguments.invocationMode == mode)
    }

    @Test func aBadInvocationModeIsAnErrorNamingTheValue() {
        let (result, _) = intent([FunctionTags.enabled: "true", FunctionTags.invocationMode: "sometimes\n"])
        guard case .invalid(let message) = result else {
            Issue.record("expected invalid, got \(result)")
            return
        }
        #expect(message.contains("\"sometimes\\n\""))
        #expect(message.contains("invocation-mode"))
    }

    @Test func payloadPassthroughAndFormatAreCarried() throws {
        let tags = [FunctionTags.enabled: "true", FunctionTags.payloadPassthrough: "true", FunctionTags.payloadFormat: "apigateway-v2"]
        let service = try #require(enabledServices(intent(tags).0)?.first)
        #expect(service.arguments == LambdaArguments(arn: arn, payloadPassthrough: true, payloadFormat: "apigateway-v2"))
    }

    /// The streaming tag writes `InvokeMode` into the extension's arguments, and reads back the same.
    @Test func theInvokeModeTagStreamsAnswers() throws {
        let tags = [FunctionTags.enabled: "true", FunctionTags.invokeMode: "response_stream"]
        let service = try #require(enabledServices(intent(tags).0)?.first)
        #expect(service.arguments == LambdaArguments(arn: arn, invokeMode: "RESPONSE_STREAM"))
        #expect(service.arguments.json.value(forCaseInsensitiveKey: "InvokeMode")?.stringValue == "RESPONSE_STREAM")
        let buffered = try #require(enabledServices(intent([FunctionTags.enabled: "true", FunctionTags.invokeMode: "BUFFERED"]).0)?.first)
        #expect(buffered.arguments == LambdaArguments(arn: arn), "BUFFERED is the default and writes nothing")
        let written =
            #"{"Kind":"service-defaults","Name":"orders","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"\#(arn)","PayloadPassthrough":false,"InvocationMode":"synchronous","InvokeMode":"RESPONSE_STREAM"}}]}"#
        let entry = try JSONDecoder().decode(ServiceDefaults.self, from: Data(written.utf8))
        #expect(LambdaArguments(entry: entry) == service.arguments, "read back as written: no rewrite on the next sync")
    }

    @Test func aBadInvokeModeIsAnErrorAndAStreamCannotBeAsynchronous() {
        let (bad, _) = intent([FunctionTags.enabled: "true", FunctionTags.invokeMode: "STREAMING"])
        guard case .invalid(let message) = bad else {
            Issue.record("expected invalid, got \(bad)")
            return
        }
        #expect(message.contains("\"STREAMING\"") && message.contains("BUFFERED or RESPONSE_STREAM"))
        let (async, _) = intent([FunctionTags.enabled: "true", FunctionTags.invokeMode: "RESPONSE_STREAM", FunctionTags.invocationMode: "ASYNCHRONOUS"])
        #expect({ if case .invalid = async { true } else { false } }())
    }

    @Test func anUnknownPayloadFormatIsAnError() {
        let (result, _) = intent([FunctionTags.enabled: "true", FunctionTags.payloadFormat: "xml"])
        #expect({ if case .invalid = result { true } else { false } }())
    }

    @Test func anotherDatacentersFunctionIsIgnoredEvenWhenDisabled() {
        let (result, _) = intent([FunctionTags.enabled: "true", FunctionTags.datacenter: "dc2"])
        #expect({ if case .ignored = result { true } else { false } }())
        let (disabled, _) = intent([FunctionTags.datacenter: "dc2"])
        #expect({ if case .ignored = disabled { true } else { false } }())
    }

    @Test func ownDatacenterTagIsServed() {
        #expect(enabledServices(intent([FunctionTags.enabled: "true", FunctionTags.datacenter: "dc1"]).0)?.count == 1)
    }

    @Test func scopeTagsOnCommunityEditionAreSkipped() {
        let (result, _) = intent([FunctionTags.enabled: "true", FunctionTags.namespace: "team"])
        #expect({ if case .skipped = result { true } else { false } }())
    }

    @Test func enterpriseDefaultsTheMissingHalfOfTheScope() throws {
        let enterprise = FunctionTags.Context(datacenter: "dc1", enterprise: true, partitions: ["default", "ap1"])
        let inNamespace = try #require(enabledServices(intent([FunctionTags.enabled: "true", FunctionTags.namespace: "team"], context: enterprise).0))
        #expect(inNamespace.first?.scope == ConsulScope(partition: "default", namespace: "team"))
        let inPartition = try #require(enabledServices(intent([FunctionTags.enabled: "true", FunctionTags.partition: "ap1"], context: enterprise).0))
        #expect(inPartition.first?.scope == ConsulScope(partition: "ap1", namespace: "default"))
        let (other, _) = intent([FunctionTags.enabled: "true", FunctionTags.partition: "ap9"], context: enterprise)
        #expect({ if case .ignored = other { true } else { false } }())
    }

    @Test func aliasesAddServicesWithQualifiedARNsAndMissingOnesAreLeftOut() throws {
        let (result, warnings) = intent([FunctionTags.enabled: "true", FunctionTags.aliases: "dev+prod+gone"], aliases: ["dev", "prod", "other"])
        let services = try #require(enabledServices(result))
        #expect(services.map(\.name) == ["orders", "orders-dev", "orders-prod"])
        #expect(services.map(\.arguments.arn) == [arn, arn + ":dev", arn + ":prod"])
        #expect(services.allSatisfy { $0.function == "orders" })
        #expect(warnings.count == 1 && warnings[0].contains("\"gone\""))
    }

    @Test(arguments: ["dev++prod", "dev+", "12", "dev,prod"])
    func aMalformedAliasListIsAnError(_ value: String) {
        let (result, _) = intent([FunctionTags.enabled: "true", FunctionTags.aliases: value])
        #expect({ if case .invalid = result { true } else { false } }())
    }

    @Test func aliasesAreOnlyAskedForEnabledFunctions() {
        #expect(FunctionTags.requestedAliases([FunctionTags.aliases: "dev"]).isEmpty)
        #expect(FunctionTags.requestedAliases([FunctionTags.enabled: "true", FunctionTags.aliases: "dev+prod"]) == ["dev", "prod"])
    }
}
