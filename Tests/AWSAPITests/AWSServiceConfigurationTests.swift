import AWSAPI
import Testing

@Suite("AWS service configuration from the environment")
struct AWSServiceConfigurationTests {
    @Test func regionalHostsWhenNoEndpointIsSet() throws {
        let configuration = try AWSServiceConfiguration(environment: ["AWS_REGION": "eu-west-1"])
        #expect(configuration.region == "eu-west-1")
        #expect(configuration.lambdaEndpoint == "https://lambda.eu-west-1.amazonaws.com")
        #expect(configuration.ssmEndpoint == "https://ssm.eu-west-1.amazonaws.com")
        #expect(configuration.caFile == nil)
        #expect(configuration.maximumAttempts == 3)
        #expect(configuration.maximumBackoff == .seconds(3))
    }

    @Test func chinaRegionsUseTheirPartitionsDomain() throws {
        let configuration = try AWSServiceConfiguration(environment: ["AWS_REGION": "cn-north-1"])
        #expect(configuration.lambdaEndpoint == "https://lambda.cn-north-1.amazonaws.com.cn")
        #expect(configuration.ssmEndpoint == "https://ssm.cn-north-1.amazonaws.com.cn")
    }

    @Test func awsRegionWinsOverAWSDefaultRegion() throws {
        #expect(try AWSServiceConfiguration(environment: ["AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-central-1"]).region == "us-west-2")
        #expect(try AWSServiceConfiguration(environment: ["AWS_REGION": "", "AWS_DEFAULT_REGION": "eu-central-1"]).region == "eu-central-1")
    }

    @Test func serviceSpecificEndpointWinsOverTheGeneralOne() throws {
        let configuration = try AWSServiceConfiguration(environment: [
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
            "AWS_ENDPOINT_URL_SSM": "https://ssm.internal.example:8443/",
            "AWS_CA_BUNDLE": "/etc/ssl/private-ca.pem",
        ])
        #expect(configuration.ssmEndpoint == "https://ssm.internal.example:8443")
        #expect(configuration.lambdaEndpoint == "http://127.0.0.1:4566")
        #expect(configuration.caFile == "/etc/ssl/private-ca.pem")

        let lambdaOnly = try AWSServiceConfiguration(environment: ["AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_LAMBDA": "http://[::1]:9001"])
        #expect(lambdaOnly.lambdaEndpoint == "http://[::1]:9001")
        #expect(lambdaOnly.ssmEndpoint == "https://ssm.us-east-1.amazonaws.com")
    }

    @Test func missingRegionIsAnErrorNamingBothVariables() {
        #expect {
            try AWSServiceConfiguration(environment: ["AWS_ENDPOINT_URL": "http://127.0.0.1:4566"])
        } throws: { error in
            let error = error as! AWSAPIError
            return error.code == .invalidRequest && error.message.contains("AWS_REGION") && error.message.contains("AWS_DEFAULT_REGION")
        }
    }

    @Test(arguments: [
        ("AWS_ENDPOINT_URL_SSM", "ftp://127.0.0.1:21", "https://"),
        ("AWS_ENDPOINT_URL", "127.0.0.1:4566", "no scheme"),
        ("AWS_ENDPOINT_URL_LAMBDA", "https://lambda.example/prefix", "path"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:99999", "port"),
        ("AWS_ENDPOINT_URL", "https://user@lambda.example", "user information"),
        ("AWS_ENDPOINT_URL_SSM", "https://", "no host"),
    ])
    func badEndpointIsRefusedNamingTheVariable(variable: String, url: String, problem: String) {
        #expect {
            try AWSServiceConfiguration(environment: ["AWS_REGION": "us-east-1", variable: url])
        } throws: { error in
            let error = error as! AWSAPIError
            return error.code == .invalidRequest && error.message.contains(variable) && error.message.contains(problem)
        }
    }

    @Test func regionThatCannotBeAHostNameIsRefused() {
        #expect {
            try AWSServiceConfiguration(environment: ["AWS_DEFAULT_REGION": "us-east-1.evil.example/"])
        } throws: { error in
            (error as! AWSAPIError).message.contains("AWS_DEFAULT_REGION")
        }
    }
}
