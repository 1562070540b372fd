import AWSSigV4
import NIOCore
import Testing

@testable import LambdaInvoke

/// `InvokeRequest` keeps its fields in a shared box (copied on change): it must still behave as a
/// plain value.
@Suite("An Invoke request as a value")
struct InvokeRequestTests {
    @Test func aChangedCopyLeavesTheOriginalAsItWas() throws {
        var original = InvokeRequest(function: ordersARN, payload: ByteBuffer(string: "{}"), traceHeader: "Root=1-a")
        original.payloadHash = "hash-of-{}"
        var copy = original
        copy.traceHeader = nil
        copy.priorAttempts = 2
        copy.timeout = .seconds(3)
        copy.function = try FunctionARN(parsing: "arn:aws:lambda:us-west-2:123456789012:function:billing")
        #expect(original.traceHeader == "Root=1-a" && original.priorAttempts == 0 && original.timeout == .seconds(15))
        #expect(original.function == ordersARN && original.functionIdentifier == ordersARN.description)
        #expect(copy.traceHeader == nil && copy.priorAttempts == 2 && copy.timeout == .seconds(3) && copy.function.functionName == "billing")
        // Untouched fields are the original's.
        #expect(copy.payloadHash == "hash-of-{}" && copy.payload == original.payload)
    }

    /// A payload set anew, or changed in place, clears the old payload's hash, in that copy only.
    @Test func aNewPayloadClearsItsCopysHashOnly() {
        var original = InvokeRequest(function: ordersARN, payload: ByteBuffer(string: "{}"))
        original.payloadHash = "hash-of-{}"
        var replaced = original
        replaced.payload = ByteBuffer(string: "[]")
        var appended = original
        appended.payload.writeString(" ")
        #expect(replaced.payloadHash == nil && appended.payloadHash == nil)
        #expect(original.payloadHash == "hash-of-{}" && original.payload == ByteBuffer(string: "{}"))
        #expect(appended.payload == ByteBuffer(string: "{} "))
    }

    /// A change of the payload in place that throws part-way clears the hash too: the bytes may
    /// have changed before the throw.
    @Test func aPayloadChangeThatThrowsStillClearsTheHash() {
        struct Stop: Error {}
        var request = InvokeRequest(function: ordersARN, payload: ByteBuffer(string: "{}"))
        request.payloadHash = "hash-of-{}"
        do {
            try request.payload.withUnsafeMutableReadableBytes { bytes in
                bytes[0] = UInt8(ascii: "[")
                throw Stop()
            }
            Issue.record("the change did not throw")
        } catch {
            #expect(error is Stop)
        }
        #expect(request.payloadHash == nil && request.payload == ByteBuffer(string: "[}"))
    }

    /// An `Event` call may always retry a throttled attempt, whatever the caller said.
    @Test func anEventCallMayRetryThrottling() {
        #expect(InvokeRequest(function: ordersARN, payload: ByteBuffer(), invocationType: .event).mayRetryThrottling)
        #expect(!InvokeRequest(function: ordersARN, payload: ByteBuffer()).mayRetryThrottling)
    }

    /// A copy made to be changed carries every field of the request it was copied from.
    @Test func aCopyCarriesEveryField() {
        let budget = ResponseBudget(limit: 1024)
        var original = InvokeRequest(
            function: ordersARN, payload: ByteBuffer(string: "{}"), invocationType: .event, timeout: .seconds(4), budget: budget, traceHeader: "Root=1-a",
            payloadPrefix: SHA256Prefix(Array("{".utf8)))
        original.payloadHash = "h"
        original.priorAttempts = 1
        var copy = original
        copy.priorAttempts = 2
        #expect(copy.function == ordersARN && copy.functionIdentifier == ordersARN.description && copy.payload == ByteBuffer(string: "{}"))
        #expect(copy.invocationType == .event && copy.mayRetryThrottling && copy.timeout == .seconds(4) && copy.budget === budget)
        #expect(copy.traceHeader == "Root=1-a" && copy.payloadHash == "h" && copy.payloadPrefix != nil && copy.stream == nil)
        #expect(original.priorAttempts == 1 && copy.priorAttempts == 2)
    }
}
