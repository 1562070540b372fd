import LambdaPayload

/// What one sync did: the one-line summary on stderr, or the `--json` object on stdout.
public struct SyncReport: Sendable, Hashable {
    public var listed = 0
    public var upserted = 0
    public var deleted = 0
    public var skipped = 0
    /// Errors tied to one function: they never fail the run.
    public var errors: [SyncPlan.FunctionError] = []
    /// Errors not tied to a single function (a `ListFunctions` page, a catalog read): the run failed.
    public var failures: [String] = []
    /// Parameter Store values written.
    public var parametersWritten = 0
    /// HTTP requests this run sent (retries included).
    public var awsCalls = 0
    public var consulCalls = 0

    public init() {}

    public var failed: Bool { !failures.isEmpty }

    public var summary: String {
        var line = "listed \(listed), upserted \(upserted), deleted \(deleted), skipped \(skipped), errors \(errors.count) (\(awsCalls) AWS calls, \(consulCalls) Consul calls)"
        if !errors.isEmpty {
            line += ": " + errors.map { "\($0.function): \($0.message)" }.joined(separator: "; ")
        }
        if !failures.isEmpty {
            line += "; failed: " + failures.joined(separator: "; ")
        }
        return line
    }

    /// Exactly the documented keys; what failed the run as a whole is on stderr and in the exit status.
    public var json: String {
        JSONValue.object([
            JSONMember("listed", .number(String(listed))),
            JSONMember("upserted", .number(String(upserted))),
            JSONMember("deleted", .number(String(deleted))),
            JSONMember("skipped", .number(String(skipped))),
            JSONMember("errors", .array(errors.map { .object([JSONMember("function", .string($0.function)), JSONMember("message", .string($0.message))]) })),
        ]).jsonText
    }
}
