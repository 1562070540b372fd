// libFuzzer target: a Lambda function ARN (docs/COMPATIBILITY.md, Config entries) as configuration
// gives it, and the Invoke endpoint derived from its partition and region (docs/DECISIONS.md D5).
import FuzzSupport
import LambdaInvoke

let resolvers: [LambdaEndpointResolver] = [.standard, .fips, .dualStack, .fipsDualStack].map { LambdaEndpointResolver(variant: $0) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let arn: FunctionARN
    do {
        arn = try FunctionARN(parsing: text)
    } catch {
        precondition(error.input == text)
        return 0
    }
    precondition(arn.description == text)
    precondition((try? FunctionARN(parsing: arn.description)) == arn, "\(text) does not parse back to itself")
    precondition(arn.accountID.utf8.count == 12 && (1...64).contains(arn.functionName.utf8.count))
    for resolver in resolvers {
        if let endpoint = try? resolver.endpoint(for: arn) {
            precondition(endpoint.region == arn.region && endpoint.baseURL == "https://\(endpoint.host)")
        }
    }
    return 0
}

@_cdecl("FuzzARN_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzz)
}
