import Foundation
import NIOCore
import Testing

@testable import ConsulAPI

/// The project's parser decodes the list watches' models exactly as `JSONDecoder` did: the same
/// values, and an error where it failed (Go's `encoding/json` zero values included).
@Suite struct FastDecodingTests {
    func both<Value: Decodable & Equatable>(_ type: Value.Type, _ json: String) -> (fast: Value?, foundation: Value?) {
        let fast = try? ConsulClient.decode(type, ByteBuffer(string: json), endpoint: "test")
        let foundation = try? JSONDecoder().decode(type, from: Data(json.utf8))
        return (fast, foundation)
    }

    static let serviceDefaults = [
        #"[{"Kind":"service-defaults","Name":"orders","Protocol":"http","Meta":{"a":"b"},"EnvoyExtensions":[{"Name":"builtin/aws/lambda","Required":false,"Arguments":{"ARN":"arn:x","PayloadPassthrough":true,"Nested":[1,2.5,null,{"k":"v"}]},"ConsulVersion":""}],"CreateIndex":3,"ModifyIndex":9}]"#,
        #"[{"Name":"orders"}]"#,
        #"[{"Name":null,"Protocol":null,"Meta":null,"EnvoyExtensions":null,"ModifyIndex":null}]"#,
        #"[{"Name":"orders","EnvoyExtensions":[{"Name":"x","Arguments":null}]}]"#,
        #"[{"Name":"orders","EnvoyExtensions":[{"Name":"x","Arguments":"text"}]}]"#,
        "[]",
        "null",
        #"[{"Name":1}]"#,
        #"[{"Name":"orders","ModifyIndex":-1}]"#,
        #"[{"Name":"orders","ModifyIndex":1.5}]"#,
        #"[{"Name":"orders","ModifyIndex":"9"}]"#,
        #"[{"Name":"orders","Meta":{"a":1}}]"#,
        #"[{"Name":"orders","EnvoyExtensions":{}}]"#,
        #"[{"Name":"orders","EnvoyExtensions":[{"Required":"yes"}]}]"#,
        #"{"Name":"orders"}"#,
        #"[{"Name":"orders"}"#,
        #"[{"Name":"orders","EnvoyExtensions":[{"Name":"x","Arguments":{"n":1e400}}]}]"#,
        #"[{"Name":"orders","EnvoyExtensions":[{"Name":"x","Arguments":{"n":-0,"m":1e2,"o":[null,[1],{"a":"\ud83d\ude00"}]}}]}]"#,
        #"[{"Name":"orders","ModifyIndex":1e2}]"#,
        #"[{"Name":"orders","ModifyIndex":5.0}]"#,
        #"[{"Name":"orders","ModifyIndex":18446744073709551616}]"#,
        #"[{"Name":"caf\u00e9 \"x\" \\ \n"}]"#,
        "[null]",
        "[1]",
    ]

    @Test(arguments: serviceDefaults)
    func serviceDefaultsDecodeAsFoundationDid(_ json: String) {
        let (fast, foundation) = both([ServiceDefaults].self, json)
        #expect(fast == foundation, "\(json)")
    }

    static let gatewayServices = [
        #"[{"Gateway":{"Name":"gw"},"Service":{"Name":"orders","Namespace":"ns","Partition":"ap"},"GatewayKind":"terminating-gateway","ServiceKind":"service","FromWildcard":true,"CreateIndex":1,"ModifyIndex":2}]"#,
        #"[{"Gateway":{"Name":"gw"},"Service":{"Name":"orders"}}]"#,
        #"[{"Gateway":{"Name":"gw"}}]"#,
        #"[{"Gateway":{"Name":"gw"},"Service":null}]"#,
        #"[{"Gateway":{"Name":"gw"},"Service":{"Name":"orders"},"FromWildcard":"true"}]"#,
        #"[{"Gateway":{"Name":"gw"},"Service":{"Name":["orders"]}}]"#,
    ]

    @Test(arguments: gatewayServices)
    func gatewayServicesDecodeAsFoundationDid(_ json: String) {
        let (fast, foundation) = both([GatewayService].self, json)
        #expect(fast == foundation, "\(json)")
    }

    @Test(arguments: [#"{"orders":["a","b"],"web":[]}"#, #"{"orders":null}"#, #"{"orders":[1]}"#, "{}", "[]"])
    func catalogServicesDecodeAsFoundationDid(_ json: String) {
        let (fast, foundation) = both(CatalogServices.self, json)
        #expect(fast == foundation, "\(json)")
    }

    /// The one difference, on purpose: of duplicate keys Go keeps the last (Foundation the first).
    @Test func aDuplicateKeyKeepsTheLastAsGoDoes() throws {
        let entries = try ConsulClient.decode([ServiceDefaults].self, ByteBuffer(string: #"[{"Name":"a","Name":"b"}]"#), endpoint: "e")
        #expect(entries.map(\.Name) == ["b"])
        let meta = try ConsulClient.decode([ServiceDefaults].self, ByteBuffer(string: #"[{"Name":"a","Meta":{"k":"1","k":"2"}}]"#), endpoint: "e")
        #expect(meta.first?.Meta == ["k": "2"])
    }

    @Test func theFastPathIsTakenAndItsErrorsAreMalformedBodies() {
        #expect(([ServiceDefaults].self as Any.Type) is any FastConsulDecodable.Type)
        #expect(throws: ConsulError.self) { try ConsulClient.decode([ServiceDefaults].self, ByteBuffer(string: "[{"), endpoint: "e") }
    }

    @Test func aKeyInSeveralSpellingsResolvesTheSameWayEveryTime() throws {
        let arguments = FreeFormJSON.object(["arn": .string("lower"), "Arn": .string("title"), "aRN": .string("mixed")])
        // "ARN" itself is absent: of the others, the first in code-point order ("Arn" < "aRN" < "arn").
        #expect(arguments.value(forCaseInsensitiveKey: "ARN") == .string("title"))
        #expect(FreeFormJSON.object(["ARN": .string("exact"), "arn": .string("x")]).value(forCaseInsensitiveKey: "ARN") == .string("exact"))
    }
}
