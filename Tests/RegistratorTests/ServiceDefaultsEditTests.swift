import ConsulAPI
import Foundation
import Registrator
import Testing

@Suite struct ServiceDefaultsEditTests {
    let service = DesiredService(
        name: "orders", function: "orders",
        arguments: LambdaArguments(arn: "arn:aws:lambda:us-east-1:123456789012:function:orders", invocationMode: .asynchronous, payloadFormat: "envoy")
    )

    func encoded(_ value: FreeFormJSON) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    @Test func aNewEntryIsExactlyTheDocumentedOne() throws {
        let entry = ServiceDefaultsEdit.entry(for: service, current: nil)
        #expect(
            try encoded(entry)
                == #"{"EnvoyExtensions":[{"Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:orders","InvocationMode":"asynchronous","PayloadFormat":"envoy","PayloadPassthrough":false},"Name":"builtin\/aws\/lambda","Required":false}],"Kind":"service-defaults","Name":"orders","Protocol":"http"}"#
        )
    }

    @Test func operatorSettingsMetaAndOtherExtensionsAreKept() throws {
        let current = try JSONDecoder().decode(
            FreeFormJSON.self,
            from: Data(
                #"""
                {"Kind":"service-defaults","Name":"orders","Protocol":"tcp","CreateIndex":3,"ModifyIndex":9,
                 "Meta":{"owner":"team-a"},"MaxInboundConnections":50,
                 "EnvoyExtensions":[
                   {"Name":"builtin/lua","Required":false,"Arguments":{"Script":"x"}},
                   {"Name":"builtin/aws/lambda","Arguments":{"arn":"old","invocationMode":"SYNCHRONOUS"}},
                   {"Name":"builtin/aws/lambda","Arguments":{"ARN":"older"}}]}
                """#.utf8))
        let entry = ServiceDefaultsEdit.entry(for: service, current: current)
        #expect(
            try encoded(entry)
                == #"{"EnvoyExtensions":[{"Arguments":{"Script":"x"},"Name":"builtin\/lua","Required":false},{"Arguments":{"ARN":"arn:aws:lambda:us-east-1:123456789012:function:orders","InvocationMode":"asynchronous","PayloadFormat":"envoy","PayloadPassthrough":false},"Name":"builtin\/aws\/lambda","Required":false}],"Kind":"service-defaults","MaxInboundConnections":50,"Meta":{"owner":"team-a"},"Name":"orders","Protocol":"http"}"#
        )
    }

    @Test func anEnterpriseEntryNamesItsScope() throws {
        var scoped = service
        scoped.scope = ConsulScope(partition: "ap1", namespace: "team")
        guard case .object(let members) = ServiceDefaultsEdit.entry(for: scoped, current: nil) else {
            Issue.record("not an object")
            return
        }
        #expect(members["Partition"] == .string("ap1"))
        #expect(members["Namespace"] == .string("team"))
    }

    @Test func theLastLambdaExtensionIsTheOneRead() throws {
        let entry = try JSONDecoder().decode(
            ServiceDefaults.self,
            from: Data(
                #"""
                {"Kind":"service-defaults","Name":"orders","EnvoyExtensions":[
                  {"Name":"builtin/aws/lambda","Arguments":{"ARN":"first"}},
                  {"Name":"builtin/aws/lambda","Arguments":{"arn":"last","invocationmode":"Asynchronous","payloadPassthrough":true}}]}
                """#.utf8))
        #expect(LambdaArguments(entry: entry) == LambdaArguments(arn: "last", payloadPassthrough: true, invocationMode: .asynchronous))
    }
}
