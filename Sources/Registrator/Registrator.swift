import AWSAPI
import ConsulAPI
import Foundation
import LambdaInvoke
import Logging
import Synchronization

/// Keeps Consul in step with the tagged Lambda functions of one account and region
/// (README.md, `lambda-gateway registrator`). The decisions are `FunctionTags` and `SyncPlan` (pure); this type
/// only reads, executes the plan, and reports.
public final class Registrator: Sendable {
    public let settings: RegistratorSettings
    let aws: AWSAPIClient
    let consul: ConsulClient
    /// The datacenter every read and write names (docs/DECISIONS.md D49).
    public let datacenter: String
    let logger: Logger
    let now: @Sendable () -> Date
    /// Re-reads the Consul token (from Parameter Store) after `ACL not found`; nil when the token
    /// is not the registrator's to refresh.
    let refreshToken: (@Sendable () async -> Void)?
    /// Consul requests sent, retries included (the report's figure).
    let consulRequests = Atomic<Int>(0)

    public static let managedTag = "managed-by-lambda-registrator"

    public init(
        settings: RegistratorSettings,
        aws: AWSAPIClient,
        consul: ConsulClient,
        datacenter: String,
        logger: Logger,
        now: @escaping @Sendable () -> Date = Date.init,
        refreshToken: (@Sendable () async -> Void)? = nil
    ) {
        self.settings = settings
        self.aws = aws
        self.consul = consul
        self.datacenter = datacenter
        self.logger = logger
        self.now = now
        self.refreshToken = refreshToken
    }

    var tagContext: FunctionTags.Context {
        FunctionTags.Context(datacenter: datacenter, enterprise: settings.enterprise, partitions: Set(settings.partitions))
    }

    /// One full sync (docs/ARCHITECTURE.md, The other components). Never throws: what failed is in the report.
    public func fullSync() async -> SyncReport {
        await counted { report in await fullSync(into: &report) }
    }

    /// Runs one sync and fills in how many calls it made.
    func counted(_ body: (inout SyncReport) async -> Void) async -> SyncReport {
        let aws = self.aws.callCounts().values.reduce(0, +)
        let consul = consulRequests.load(ordering: .relaxed)
        var report = SyncReport()
        await body(&report)
        report.awsCalls = self.aws.callCounts().values.reduce(0, +) - aws
        report.consulCalls = consulRequests.load(ordering: .relaxed) - consul
        return report
    }

    func fullSync(into report: inout SyncReport) async {
        let (listed, listingComplete) = await listAllFunctions(&report)
        report.listed = listed.count

        let intents = await boundedMap(listed, limit: settings.maximumConcurrency, skipped: { ($0.name, FunctionIntent.unknown("the sync was stopped before its tags were read")) }) { function in
            (function.name, await self.intent(of: function))
        }
        var functions: [String: FunctionIntent] = [:]
        for (name, intent) in intents { functions[name] = intent }

        let (views, unreadable) = await scopeViews(&report)
        // A scope that could not be read gets no writes at all: nothing is known there.
        for (name, intent) in functions {
            if case .enabled(let services) = intent, services.contains(where: { unreadable($0.scope) }) {
                functions[name] = .unknown("the services of its namespace could not be read")
            }
        }
        let existing = views.values.flatMap(\.managed)
        let plan = SyncPlan(
            functions: functions,
            listingComplete: listingComplete && !report.failed,
            existing: existing,
            otherOwners: Dictionary(existing.map { ($0.key, $0.owner) }, uniquingKeysWith: { first, _ in first }),
            foreign: views.values.reduce(into: Set()) { $0.formUnion($1.foreign) },
            home: listed.lazy.compactMap { try? FunctionARN(parsing: $0.arn) }.first.map(FunctionHome.init)
        )
        await execute(plan, into: &report)
    }

    /// Every page of `ListFunctions`; a failed page ends the listing as incomplete (docs/DECISIONS.md D43).
    func listAllFunctions(_ report: inout SyncReport) async -> ([LambdaFunctionSummary], complete: Bool) {
        var functions: [LambdaFunctionSummary] = []
        var marker: String?
        var seen: Set<String> = []
        repeat {
            do throws(AWSAPIError) {
                let page = try await aws.lambda.listFunctions(marker: marker, maxItems: settings.pageSize)
                functions += page.functions
                marker = page.nextMarker
                if let marker, !seen.insert(marker).inserted {
                    report.failures.append("ListFunctions gave the marker \(FunctionTags.printable(marker)) twice; the listing is incomplete and nothing is deleted in this run")
                    return (functions, false)
                }
            } catch {
                report.failures.append("ListFunctions failed after \(functions.count) functions; nothing is deleted in this run: \(error)")
                return (functions, false)
            }
        } while marker != nil
        return (functions, true)
    }

    /// One function's intent: its tags (and aliases), then `FunctionTags.intent`. A failed read makes the
    /// function UNKNOWN, never DISABLED (docs/DECISIONS.md D43).
    func intent(of function: LambdaFunctionSummary, tags knownTags: [String: String]? = nil) async -> FunctionIntent {
        let tags: [String: String]
        if let knownTags {
            tags = knownTags
        } else {
            do throws(AWSAPIError) {
                tags = try await aws.lambda.listTags(resource: function.arn)
            } catch {
                return .unknown("its tags could not be read: \(error)")
            }
        }
        var aliases: Set<String>?
        if !FunctionTags.requestedAliases(tags).isEmpty {
            do throws(AWSAPIError) {
                aliases = Set(try await aws.lambda.listAliases(function: function.arn))
            } catch {
                return .unknown("its aliases could not be read: \(error)")
            }
        }
        let (intent, warnings) = FunctionTags.intent(function: function.name, arn: function.arn, tags: tags, existingAliases: aliases, context: tagContext)
        for warning in warnings {
            logger.warning("\(warning)", metadata: ["function": "\(function.name)"])
        }
        return intent
    }

    /// The writes and deletes of a plan, a few at a time; then the mTLS data of every desired service.
    func execute(_ plan: SyncPlan, into report: inout SyncReport) async {
        report.errors += plan.errors
        report.skipped += plan.skipped.count
        for skip in plan.skipped {
            logger.warning("function skipped", metadata: ["function": "\(skip.function)", "reason": "\(skip.message)"])
        }
        for error in plan.errors {
            logger.error("function not synced", metadata: ["function": "\(error.function)", "error": "\(error.message)"])
        }
        for key in plan.keptForSafety {
            logger.info("managed service kept: its function's state is not known in this run", metadata: ["service": "\(key)"])
        }
        let upserts = await boundedMap(
            plan.upserts, limit: settings.maximumConcurrency,
            skipped: { SyncPlan.FunctionError?.some(SyncPlan.FunctionError(function: $0.service.function, message: "service \($0.service.name) not written: the sync was stopped")) }
        ) { upsert in
            do throws(ConsulError) {
                try await self.upsert(upsert.service)
                self.logger.info(
                    "service registered", metadata: ["service": "\(upsert.service.scope.qualified(upsert.service.name))", "function": "\(upsert.service.function)", "reason": "\(upsert.reason)"])
                return SyncPlan.FunctionError?.none
            } catch {
                return SyncPlan.FunctionError(function: upsert.service.function, message: "writing service \(upsert.service.name) failed: \(error)")
            }
        }
        for outcome in upserts {
            if let error = outcome { report.errors.append(error) } else { report.upserted += 1 }
        }
        let deletes = await boundedMap(plan.deletes, limit: settings.maximumConcurrency, skipped: { _ in String?.some("not deleted: the sync was stopped") }) { delete in
            do {
                try await self.delete(delete.managed)
                self.logger.info("service deregistered", metadata: ["service": "\(delete.service)", "reason": "\(delete.reason)"])
                return String?.none
            } catch {
                return "deleting service \(delete.service) failed: \(error)"
            }
        }
        for (delete, outcome) in zip(plan.deletes, deletes) {
            if let message = outcome {
                report.errors.append(SyncPlan.FunctionError(function: delete.managed.owner, message: message))
            } else {
                report.deleted += 1
            }
        }
        if settings.extensionDataPrefix != nil {
            await refreshExtensionData(plan.desired, into: &report)
        }
    }
}
