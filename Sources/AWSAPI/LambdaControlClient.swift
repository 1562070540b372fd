import AWSSigV4
import LambdaPayload

/// A function as `ListFunctions` lists it.
public struct LambdaFunctionSummary: Sendable, Hashable {
    public var name: String
    public var arn: String

    public init(name: String, arn: String) {
        self.name = name
        self.arn = arn
    }
}

/// One page of `ListFunctions`; `nextMarker` nil on the last page.
public struct ListFunctionsPage: Sendable, Hashable {
    public var functions: [LambdaFunctionSummary]
    public var nextMarker: String?

    public init(functions: [LambdaFunctionSummary], nextMarker: String?) {
        self.functions = functions
        self.nextMarker = nextMarker
    }
}

/// What `GetFunction` says of a function that the registrator reads.
public struct LambdaFunctionDetails: Sendable, Hashable {
    public var function: LambdaFunctionSummary
    public var tags: [String: String]

    public init(function: LambdaFunctionSummary, tags: [String: String]) {
        self.function = function
        self.tags = tags
    }
}

/// Lambda's control-plane reads (REST-JSON, SigV4 service `lambda`), as the AWS Lambda API reference gives them.
///
/// A function name or ARN in a path is one segment, percent-encoded as the AWS SDKs send it
/// (`arn%3Aaws%3Alambda%3A...`); SigV4 then signs it encoded once more (`arn%253Aaws...`).
public struct LambdaControlClient: Sendable {
    let client: AWSAPIClient

    /// One page: `GET /2015-03-31/functions/?MaxItems=&Marker=`. `maxItems`: 1 to 10,000.
    public func listFunctions(marker: String?, maxItems: Int) async throws(AWSAPIError) -> ListFunctionsPage {
        let operation = "ListFunctions"
        guard (1...10_000).contains(maxItems) else {
            throw AWSAPIError(.invalidRequest, "\(operation): MaxItems must be 1 to 10000, not \(maxItems)")
        }
        let answer = try await client.send(
            AWSRequest(operation: operation, method: .GET, path: "/2015-03-31/functions/", query: Self.pageQuery(marker: marker, maxItems: maxItems), idempotent: true),
            to: client.lambdaService
        ).jsonObject(operation)
        guard let items = answer["Functions"]?.arrayValue else {
            throw AWSAPIError(.malformedResponse, "\(operation): the answer has no \"Functions\" list")
        }
        var functions: [LambdaFunctionSummary] = []
        functions.reserveCapacity(items.count)
        for item in items { functions.append(try Self.summary(of: item, operation)) }
        return ListFunctionsPage(functions: functions, nextMarker: answer.marker("NextMarker"))
    }

    /// The function's tags: `GET /2017-03-31/tags/{ARN}` (the resource must be an ARN).
    public func listTags(resource arn: String) async throws(AWSAPIError) -> [String: String] {
        let operation = "ListTags"
        let answer = try await client.send(
            AWSRequest(operation: operation, method: .GET, path: "/2017-03-31/tags/" + (try Self.segment(arn, operation)), idempotent: true),
            to: client.lambdaService
        ).jsonObject(operation)
        return try Self.tags(in: answer, operation)
    }

    /// The function's name, ARN and tags: `GET /2015-03-31/functions/{name or ARN}`.
    public func getFunction(_ nameOrARN: String) async throws(AWSAPIError) -> LambdaFunctionDetails {
        let operation = "GetFunction"
        let answer = try await client.send(
            AWSRequest(operation: operation, method: .GET, path: "/2015-03-31/functions/" + (try Self.segment(nameOrARN, operation)), idempotent: true),
            to: client.lambdaService
        ).jsonObject(operation)
        guard let configuration = answer["Configuration"] else {
            throw AWSAPIError(.malformedResponse, "\(operation): the answer has no \"Configuration\"")
        }
        return LambdaFunctionDetails(function: try Self.summary(of: configuration, operation), tags: try Self.tags(in: answer, operation))
    }

    /// The names of all the function's aliases, every page read:
    /// `GET /2015-03-31/functions/{name or ARN}/aliases?MaxItems=&Marker=`.
    public func listAliases(function nameOrARN: String, maxItems: Int = 50) async throws(AWSAPIError) -> [String] {
        let operation = "ListAliases"
        guard (1...10_000).contains(maxItems) else {
            throw AWSAPIError(.invalidRequest, "\(operation): MaxItems must be 1 to 10000, not \(maxItems)")
        }
        let path = "/2015-03-31/functions/\(try Self.segment(nameOrARN, operation))/aliases"
        var names: [String] = []
        var marker: String?
        var seen: Set<String> = []
        repeat {
            let answer = try await client.send(
                AWSRequest(operation: operation, method: .GET, path: path, query: Self.pageQuery(marker: marker, maxItems: maxItems), idempotent: true),
                to: client.lambdaService
            ).jsonObject(operation)
            guard let items = answer["Aliases"]?.arrayValue else {
                throw AWSAPIError(.malformedResponse, "\(operation): the answer has no \"Aliases\" list")
            }
            for item in items { names.append(try item.requiredString("Name", operation)) }
            marker = answer.marker("NextMarker")
            // A service that hands back a marker it gave before would keep this loop going forever.
            if let marker, !seen.insert(marker).inserted {
                throw AWSAPIError(.malformedResponse, "\(operation): \(nameOrARN): the marker \"\(marker)\" came back twice")
            }
        } while marker != nil
        return names
    }

    /// `MaxItems=n[&Marker=...]`, the marker percent-encoded (Lambda's markers are base64 text).
    static func pageQuery(marker: String?, maxItems: Int) -> String {
        var query = "MaxItems=\(maxItems)"
        if let marker { query += "&Marker=" + URIEncoding.encode(marker) }
        return query
    }

    /// A name or ARN as one path segment.
    static func segment(_ identifier: String, _ operation: String) throws(AWSAPIError) -> String {
        guard !identifier.isEmpty else { throw AWSAPIError(.invalidRequest, "\(operation): empty function name or ARN") }
        return URIEncoding.encode(identifier)
    }

    static func summary(of configuration: JSONValue, _ operation: String) throws(AWSAPIError) -> LambdaFunctionSummary {
        LambdaFunctionSummary(
            name: try configuration.requiredString("FunctionName", operation),
            arn: try configuration.requiredString("FunctionArn", operation)
        )
    }

    /// `Tags`, absent when a function has none.
    static func tags(in answer: JSONValue, _ operation: String) throws(AWSAPIError) -> [String: String] {
        guard let tags = answer["Tags"], tags != .null else { return [:] }
        guard let map = tags.stringMap else {
            throw AWSAPIError(.malformedResponse, "\(operation): \"Tags\" is not an object of strings")
        }
        return map
    }
}
