// libFuzzer target: the strict JSON parser that reads every function result (docs/COMPATIBILITY.md, Function results).
// A parsed value must write back (`jsonText`) as JSON that parses to the same value.
import FuzzSupport
import LambdaPayload

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let value: JSONValue
    do {
        value = try JSONParser.parse(UnsafeRawBufferPointer(start: data, count: size))
    } catch {
        precondition((0...size).contains(error.offset), "error offset \(error.offset) outside \(size) bytes")
        return 0
    }
    let text = value.jsonText
    do {
        let again = try JSONParser.parse(Array(text.utf8))
        precondition(again == value, "\(text) parses to a different value")
    } catch {
        preconditionFailure("the written form \(text) does not parse: \(error)")
    }
    return 0
}

@_cdecl("FuzzPayloadJSON_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}
