import LambdaInvoke
import Testing

@Suite("Function ARNs and endpoints")
struct TargetTests {
    @Test(arguments: [
        "arn:aws:lambda:us-west-2:123456789012:function:my-function",
        "arn:aws:lambda:us-west-2:123456789012:function:my-function:42",
        "arn:aws:lambda:us-west-2:123456789012:function:my-function:$LATEST",
        "arn:aws:lambda:us-west-2:123456789012:function:my-function:prod",
        "arn:aws-cn:lambda:cn-north-1:123456789012:function:f",
        "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f",
        "arn:aws-iso:lambda:us-iso-east-1:123456789012:function:f",
    ])
    func acceptedARNs(text: String) throws {
        let arn = try FunctionARN(parsing: text)
        #expect(arn.description == text)
    }

    @Test(arguments: [
        "my-function", "arn:aws:lambda:us-west-2:123456789012:my-function", "arn:aws:lambda:uswest2:123456789012:function:f",
        "arn:aws:lambda:us-west-2:12345:function:f", "arn:aws:s3:us-west-2:123456789012:function:f", "arn:aws:lambda:us-west-2:123456789012:function:f:a:b",
        "arn:aws:lambda:us-west-2:123456789012:function:bad.name", "arn:aws:lambda:us-west-2:123456789012:function:f:$PREV", "arn:gcp:lambda:us-west-2:123456789012:function:f",
    ])
    func rejectedARNs(text: String) {
        #expect(throws: FunctionARN.ParseError.self) { try FunctionARN(parsing: text) }
    }

    @Test func arnParts() throws {
        let arn = try FunctionARN(parsing: "arn:aws:lambda:eu-west-1:123456789012:function:resize:live")
        #expect(arn.partition == "aws" && arn.region == "eu-west-1" && arn.accountID == "123456789012")
        #expect(arn.functionName == "resize" && arn.qualifier == "live")
    }

    /// An ARN is an object, yet two parses of one text are equal and hash alike (a dictionary of
    /// settings keyed or compared by ARN sees one function), and another qualifier is another ARN.
    @Test func arnsAreEqualByTheirText() throws {
        let text = "arn:aws:lambda:eu-west-1:123456789012:function:resize"
        let first = try FunctionARN(parsing: text)
        let second = try FunctionARN(parsing: text)
        #expect(first !== second && first == second && first.hashValue == second.hashValue)
        #expect(Set([first, second]).count == 1)
        #expect(first != (try FunctionARN(parsing: text + ":live")))
        #expect(first != (try FunctionARN(parsing: "arn:aws:lambda:eu-west-1:123456789012:function:resizer")))
    }

    @Test(arguments: [
        ("arn:aws:lambda:us-east-1:123456789012:function:f", LambdaEndpointResolver.Variant.standard, "lambda.us-east-1.amazonaws.com"),
        ("arn:aws:lambda:us-east-1:123456789012:function:f", .fips, "lambda-fips.us-east-1.amazonaws.com"),
        ("arn:aws:lambda:us-east-1:123456789012:function:f", .dualStack, "lambda.us-east-1.api.aws"),
        ("arn:aws:lambda:us-east-1:123456789012:function:f", .fipsDualStack, "lambda-fips.us-east-1.api.aws"),
        ("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f", .fips, "lambda-fips.us-gov-west-1.amazonaws.com"),
        ("arn:aws-cn:lambda:cn-north-1:123456789012:function:f", .standard, "lambda.cn-north-1.amazonaws.com.cn"),
        ("arn:aws-cn:lambda:cn-north-1:123456789012:function:f", .dualStack, "lambda.cn-north-1.api.amazonwebservices.com.cn"),
        ("arn:aws-iso:lambda:us-iso-east-1:123456789012:function:f", .standard, "lambda.us-iso-east-1.c2s.ic.gov"),
        ("arn:aws-iso-b:lambda:us-isob-east-1:123456789012:function:f", .standard, "lambda.us-isob-east-1.sc2s.sgov.gov"),
    ])
    func partitionEndpoints(arn: String, variant: LambdaEndpointResolver.Variant, host: String) throws {
        let endpoint = try LambdaEndpointResolver(variant: variant).endpoint(for: try FunctionARN(parsing: arn))
        #expect(endpoint.host == host)
        #expect(endpoint.baseURL == "https://\(host)")
    }

    @Test func unsupportedVariantsNeedAnOverride() throws {
        let china = try FunctionARN(parsing: "arn:aws-cn:lambda:cn-north-1:123456789012:function:f")
        #expect(throws: LambdaEndpointResolver.ResolutionError.self) { try LambdaEndpointResolver(variant: .fips).endpoint(for: china) }
        let other = try FunctionARN(parsing: "arn:aws-eusc:lambda:eu-central-1:123456789012:function:f")
        #expect(throws: LambdaEndpointResolver.ResolutionError.self) { try LambdaEndpointResolver().endpoint(for: other) }
        let overridden = try LambdaEndpointResolver(customEndpoint: "https://vpce.example:8443/", variant: .fips).endpoint(for: other)
        #expect(overridden.baseURL == "https://vpce.example:8443" && overridden.host == "vpce.example:8443" && overridden.region == "eu-central-1")
    }

    @Test func environmentVariablesChooseTheEndpoint() throws {
        let arn = try FunctionARN(parsing: "arn:aws:lambda:us-east-1:123456789012:function:f")
        #expect(try LambdaEndpointResolver(environment: ["AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:2"]).endpoint(for: arn).host == "127.0.0.1:2")
        #expect(try LambdaEndpointResolver(environment: ["AWS_USE_FIPS_ENDPOINT": "TRUE", "AWS_USE_DUALSTACK_ENDPOINT": "true"]).endpoint(for: arn).host == "lambda-fips.us-east-1.api.aws")
        #expect(try LambdaEndpointResolver(environment: ["AWS_ENDPOINT_URL": "http://127.0.0.1:1"], customEndpoint: "https://x.test").endpoint(for: arn).host == "x.test")
    }
}
