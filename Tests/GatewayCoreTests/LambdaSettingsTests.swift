import ConsulAPI
import Foundation
import GatewayCore
import LambdaInvoke
import LambdaPayload
import Testing

func serviceDefaults(_ json: String) throws -> ServiceDefaults {
    try JSONDecoder().decode(ServiceDefaults.self, from: Data(json.utf8))
}

func resolve(_ json: String, proxy: String? = nil) throws -> LambdaSettings? {
    let proxyDefaults = try proxy.map { try JSONDecoder().decode(ProxyDefaults.self, from: Data($0.utf8)) }
    return try LambdaSettings.resolve(service: "orders", serviceDefaults: try serviceDefaults(json), proxyDefaults: proxyDefaults)
}

func expectConfigError(_ json: String, contains text: String, proxy: String? = nil) {
    do {
        let settings = try resolve(json, proxy: proxy)
        Issue.record("expected a configuration error, got \(String(describing: settings))")
    } catch let error as LambdaConfigError {
        #expect(error.description.contains(text), "\(error)")
    } catch {
        Issue.record("unexpected \(error)")
    }
}

@Suite("Lambda settings from config entries (docs/COMPATIBILITY.md, Config entries)")
struct LambdaSettingsTests {
    @Test func documentedExtensionForm() throws {
        let settings = try #require(
            try resolve(
                #"{"Name":"orders","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Required":false,"Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:orders","PayloadPassthrough":false,"InvocationMode":"synchronous"}}]}"#
            ))
        #expect(settings.function.description == "arn:aws:lambda:us-east-1:123456789012:function:orders")
        #expect(settings.region == "us-east-1" && settings.payloadFormat == .envoy && !settings.passthrough && settings.invocationType == .requestResponse)
    }

    @Test func registratorFormWithLowerCaseKeysAndUpperCaseMode() throws {
        let settings = try #require(
            try resolve(
                #"{"Name":"orders","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"arn":"arn:aws:lambda:eu-west-1:123456789012:function:resize:live","invocationMode":"ASYNCHRONOUS","payloadPassthrough":true}}]}"#
            ))
        #expect(settings.passthrough && settings.invocationType == .event && settings.region == "eu-west-1" && settings.function.qualifier == "live")
    }

    @Test func legacyMetaWithHistoricalMisspelling() throws {
        let settings = try #require(
            try resolve(
                #"{"Name":"orders","Meta":{"serverless.consul.hashicorp.com/v1alpha1/lambda/enabled":"TRUE","serverless.consul.hashicorp.com/v1alpha1/lambda/arn":"arn:aws:lambda:us-east-2:123456789012:function:legacy","serverless.consul.hashicorp.com/v1alpha1/lambda/region":"us-east-2","serverless.consul.hashicorp.com/v1alpha1/lambda/payload-passhthrough":"true"}}"#
            ))
        #expect(settings.passthrough && settings.invocationType == .requestResponse && settings.region == "us-east-2")
    }

    @Test func sharedExampleInLegacyForm() throws {
        let data = try #require(
            FileManager.default.contents(
                atPath: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(
                    "shared/testdata/consul/service-defaults-thumbnails.json"
                ).path))
        let entry = try JSONDecoder().decode(ServiceDefaults.self, from: data)
        let settings = try #require(try LambdaSettings.resolve(service: "thumbnails", serviceDefaults: entry, proxyDefaults: nil))
        #expect(settings.passthrough && settings.invocationType == .event && settings.function.qualifier == "live")
    }

    @Test func extensionsWinOverMetaAndServiceDefaultsOverProxyDefaults() throws {
        let proxy = #"{"Kind":"proxy-defaults","Name":"global","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:from-proxy"}}]}"#
        let fromProxy = try #require(try resolve(#"{"Name":"orders"}"#, proxy: proxy))
        #expect(fromProxy.function.functionName == "from-proxy")
        let fromService = try #require(
            try resolve(
                #"{"Name":"orders","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:from-service"}}],"Meta":{"serverless.consul.hashicorp.com/v1alpha1/lambda/enabled":"true","serverless.consul.hashicorp.com/v1alpha1/lambda/arn":"arn:aws:lambda:us-east-1:123456789012:function:from-meta"}}"#,
                proxy: proxy))
        #expect(fromService.function.functionName == "from-service")
    }

    @Test func payloadFormatFromArgumentOrMeta() throws {
        let argument = try #require(
            try resolve(
                #"{"Name":"orders","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:web-ui","PayloadFormat":"APIGateway-V2"}}]}"#))
        #expect(argument.payloadFormat == .apiGatewayV2)
        let meta = try #require(
            try resolve(
                #"{"Name":"orders","Meta":{"lambda-gateway/payload-format":"apigateway-v2"},"EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:web-ui"}}]}"#
            ))
        #expect(meta.payloadFormat == .apiGatewayV2)
    }

    @Test func invokeModeFromArgumentOrMetaBufferedByDefault() throws {
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:orders"
        #expect(try resolve(#"{"Name":"orders","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"\#(arn)"}}]}"#)?.invokeMode == .buffered)
        #expect(try resolve(#"{"Name":"orders","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"\#(arn)","InvokeMode":"RESPONSE_STREAM"}}]}"#)?.invokeMode == .responseStream)
        #expect(try resolve(#"{"Name":"orders","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"arn":"\#(arn)","invokeMode":"response_stream"}}]}"#)?.invokeMode == .responseStream)
        #expect(
            try resolve(#"{"Name":"orders","Meta":{"lambda-gateway/invoke-mode":"RESPONSE_STREAM"},"EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"\#(arn)"}}]}"#)?.invokeMode
                == .responseStream)
        let legacy =
            #"{"Name":"orders","Meta":{"serverless.consul.hashicorp.com/v1alpha1/lambda/enabled":"true","serverless.consul.hashicorp.com/v1alpha1/lambda/arn":"\#(arn)","lambda-gateway/invoke-mode":"RESPONSE_STREAM"}}"#
        #expect(try resolve(legacy)?.invokeMode == .responseStream)
        expectConfigError(
            #"{"Name":"orders","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"\#(arn)","InvokeMode":"STREAMING"}}]}"#,
            contains: #"unknown InvokeMode "STREAMING" (BUFFERED or RESPONSE_STREAM)"#)
        expectConfigError(#"{"Name":"orders","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"\#(arn)","InvokeMode":true}}]}"#, contains: "InvokeMode must be a string")
        expectConfigError(
            #"{"Name":"orders","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":{"ARN":"\#(arn)","InvokeMode":"RESPONSE_STREAM","InvocationMode":"asynchronous"}}]}"#,
            contains: "RESPONSE_STREAM cannot be used with an asynchronous InvocationMode"
        )
    }

    @Test func notALambda() throws {
        #expect(try resolve(#"{"Name":"orders","Protocol":"http"}"#) == nil)
        #expect(try resolve(#"{"Name":"orders","Meta":{"serverless.consul.hashicorp.com/v1alpha1/lambda/enabled":"false"}}"#) == nil)
        #expect(try resolve(#"{"Name":"orders","Meta":{"serverless.consul.hashicorp.com/alpha/lambda/enabled":"true"}}"#) == nil)
        #expect(try resolve(#"{"Name":"orders","EnvoyExtensions":[{"Name":"builtin/lua","Required":false}]}"#) == nil)
    }

    @Test func invalidConfigurationsAreErrorsThatNameTheProblem() {
        let ext = { (arguments: String) in #"{"Name":"orders","EnvoyExtensions":[{"Name":"builtin/aws/lambda","Arguments":\#(arguments)}]}"# }
        expectConfigError(ext(#"{"Region":"us-east-1"}"#), contains: "has no ARN")
        expectConfigError(ext(#"{"ARN":"orders"}"#), contains: "invalid function ARN")
        expectConfigError(ext(#"{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:orders","Region":"us-west-2"}"#), contains: #"Region "us-west-2" does not match ARN region "us-east-1""#)
        expectConfigError(ext(#"{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:orders","InvocationMode":"sometimes"}"#), contains: "unknown InvocationMode")
        expectConfigError(ext(#"{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:orders","PayloadFormat":"xml"}"#), contains: "unknown PayloadFormat")
        expectConfigError(ext(#"{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:orders","PayloadPassthrough":"yes"}"#), contains: "PayloadPassthrough must be true or false")
        expectConfigError(#"{"Name":"orders","EnvoyExtensions":[{"Name":"builtin/lua","Required":true}]}"#, contains: "required Envoy extension builtin/lua")
        expectConfigError(#"{"Name":"orders","Meta":{"serverless.consul.hashicorp.com/v1alpha1/lambda/enabled":"true"}}"#, contains: "arn is missing")
    }
}
