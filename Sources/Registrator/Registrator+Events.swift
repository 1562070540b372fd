import AWSAPI
import ConsulAPI

extension Registrator {
    /// One event (docs/COMPATIBILITY.md, What it writes: Triggers). A function event reads the function fresh (`GetFunction`), never from the
    /// event body; a function Lambda no longer has loses its services.
    public func handle(_ event: RegistratorEvent) async -> SyncReport {
        switch event {
        case .fullSync:
            return await fullSync()
        case .ignored(let reason):
            logger.info("event ignored", metadata: ["reason": "\(reason)"])
            return SyncReport()
        case .function(let identifier, let eventName):
            return await counted { report in await syncFunction(identifier, eventName: eventName, into: &report) }
        }
    }

    func syncFunction(_ identifier: String, eventName: String, into report: inout SyncReport) async {
        // The function, not a version or alias of it: deleting version 3 leaves the function.
        let unqualified = RegistratorEvent.unqualified(identifier)
        var name = RegistratorEvent.functionName(unqualified)
        let intent: FunctionIntent
        do throws(AWSAPIError) {
            let details = try await aws.lambda.getFunction(unqualified)
            report.listed = 1
            name = details.function.name
            intent = await self.intent(of: details.function, tags: details.tags)
        } catch  where error.isNotFound {
            // Deleted (or never there): whatever the registrator holds for it goes.
            intent = .disabled
        } catch {
            report.failures.append("GetFunction \(FunctionTags.printable(name)) for the \(FunctionTags.printable(eventName)) event failed: \(error)")
            return
        }
        let (views, unreadable) = await scopeViews(&report)
        guard report.failures.isEmpty else { return }
        if case .enabled(let services) = intent, services.contains(where: { unreadable($0.scope) }) {
            report.failures.append("the services of \(name)'s namespace could not be read")
            return
        }
        // The function's services in every scope: the managed services whose entry names it.
        var owned: [ManagedService] = []
        var otherOwners: [ManagedService.Key: String] = [:]
        for service in views.values.flatMap(\.managed) {
            if service.owner == name { owned.append(service) } else { otherOwners[service.key] = service.owner }
        }
        // docs/DECISIONS.md D59 without a listing: an alias service named like an existing function is skipped.
        if case .enabled(let services) = intent {
            for service in services where service.name != name && otherOwners[ManagedService.Key(scope: service.scope, name: service.name)] == nil {
                do throws(AWSAPIError) {
                    _ = try await aws.lambda.getFunction(service.name)
                    otherOwners[ManagedService.Key(scope: service.scope, name: service.name)] = service.name
                } catch  where error.isNotFound {
                    continue
                } catch {
                    otherOwners[ManagedService.Key(scope: service.scope, name: service.name)] = "(unknown: \(error.code))"
                }
            }
        }
        let plan = SyncPlan(
            functions: [name: intent],
            listingComplete: false,
            existing: owned,
            otherOwners: otherOwners,
            foreign: views.values.reduce(into: Set()) { $0.formUnion($1.foreign) }
        )
        await execute(plan, into: &report)
    }
}
