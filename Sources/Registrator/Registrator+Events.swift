import AWSAPI
import ConsulAPI

extension Registrator {
    /// A.6.3: one event. A function event reads the function fresh (`GetFunction`), never from the
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
        let name = RegistratorEvent.functionName(identifier)
        let intent: FunctionIntent
        do throws(AWSAPIError) {
            let details = try await aws.lambda.getFunction(identifier)
            report.listed = 1
            intent = await self.intent(of: details.function, tags: details.tags)
        } catch where error.isNotFound {
            // Deleted (or never there): whatever the registrator holds for it goes.
            intent = .disabled
        } catch {
            report.failures.append("GetFunction \(name) for the \(eventName) event failed: \(error)")
            return
        }
        // The function's services in every scope it may use: the managed services whose entry names it.
        var owned: [ManagedService] = []
        var otherOwners: [ManagedService.Key: String] = [:]
        for scope in await managedScopes(&report) {
            do throws(ConsulError) {
                for service in try await managedServices(in: scope) {
                    if service.owner == name { owned.append(service) } else { otherOwners[service.key] = service.owner }
                }
            } catch {
                report.failures.append("reading the managed services of \(scope) failed: \(error)")
                return
            }
        }
        guard report.failures.isEmpty else { return }
        let plan = SyncPlan(functions: [name: intent], listingComplete: false, existing: owned, otherOwners: otherOwners)
        await execute(plan, into: &report)
    }
}
