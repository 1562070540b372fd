import Registrator
import Testing

@Suite struct RegistratorEventTests {
    func event(_ json: String) throws(RegistratorEvent.Error) -> RegistratorEvent {
        try RegistratorEvent(json: Array(json.utf8))
    }

    @Test func theScheduleIsAFullSync() throws {
        #expect(try event(#"{"source":"aws.events","detail-type":"Scheduled Event"}"#) == .fullSync)
    }

    @Test(arguments: [
        ("CreateFunction20150331", #"{"responseElements":{"functionArn":"arn:aws:lambda:us-east-1:123456789012:function:orders"}}"#),
        ("TagResource20170331v2", #"{"requestParameters":{"resource":"arn:aws:lambda:us-east-1:123456789012:function:orders"}}"#),
        ("UntagResource", #"{"requestParameters":{"resource":"arn:aws:lambda:us-east-1:123456789012:function:orders"}}"#),
        ("DeleteFunction20150331", #"{"requestParameters":{"functionName":"arn:aws:lambda:us-east-1:123456789012:function:orders"}}"#),
    ])
    func functionEventsNameTheirFunction(_ name: String, _ fields: String) throws {
        let detail = "{\"eventSource\":\"lambda.amazonaws.com\",\"eventName\":\"\(name)\"," + fields.dropFirst()
        let parsed = try event(#"{"source":"aws.lambda","detail":"# + detail + "}")
        #expect(parsed == .function("arn:aws:lambda:us-east-1:123456789012:function:orders", eventName: name))
    }

    @Test func aFailedCallIsIgnored() throws {
        let parsed = try event(#"{"source":"aws.lambda","detail":{"eventName":"TagResource","errorCode":"AccessDenied","requestParameters":{"resource":"x"}}}"#)
        #expect({ if case .ignored = parsed { true } else { false } }())
    }

    @Test(arguments: [
        (#"{"source":"aws.s3"}"#, "unsupported event source \"aws.s3\""),
        (#"{"source":"aws.lambda","detail":{"eventName":"UpdateFunctionCode"}}"#, "unsupported event kind \"UpdateFunctionCode\""),
        (#"{"source":"aws.lambda","detail":{"eventName":"TagResource","requestParameters":{"resource":""}}}"#, "ARN undefined in the TagResource event"),
        (#"{"source":"aws.lambda","detail":{"eventName":"CreateFunction","responseElements":null}}"#, "ARN undefined in the CreateFunction event"),
        ("[1]", "the event is not a JSON object"),
    ])
    func unsupportedEventsAreErrors(_ json: String, _ message: String) {
        #expect(throws: RegistratorEvent.Error(message: message)) { try event(json) }
    }

    @Test(arguments: [("orders", "orders"), ("123456789012:function:orders", "orders"), ("arn:aws:lambda:us-east-1:123456789012:function:orders:prod", "orders")])
    func functionNamesComeFromAnyIdentifier(_ identifier: String, _ name: String) {
        #expect(RegistratorEvent.functionName(identifier) == name)
    }

    @Test(arguments: [
        ("orders", "orders"), ("orders:3", "orders"), ("123456789012:function:orders:prod", "123456789012:function:orders"),
        ("arn:aws:lambda:us-east-1:123456789012:function:orders:3", "arn:aws:lambda:us-east-1:123456789012:function:orders"),
        ("arn:aws:lambda:us-east-1:123456789012:function:orders", "arn:aws:lambda:us-east-1:123456789012:function:orders"),
    ])
    func versionsAndAliasesAreDroppedToNameTheFunction(_ identifier: String, _ unqualified: String) {
        #expect(RegistratorEvent.unqualified(identifier) == unqualified)
    }

    @Test func controlCharactersNeverReachAMessage() throws {
        let parsed = try event(#"{"source":"aws.lambda","detail":{"eventName":"Tag\u001b[31m","errorCode":"x\ny"}}"#)
        guard case .ignored(let reason) = parsed else {
            Issue.record("\(parsed)")
            return
        }
        #expect(!reason.unicodeScalars.contains { $0.value < 0x20 })
        #expect(throws: RegistratorEvent.Error.self) {
            try event(#"{"source":"aws.lambda","detail":{"eventName":"TagResource","requestParameters":{"resource":"orders\nforged"}}}"#)
        }
    }
}
