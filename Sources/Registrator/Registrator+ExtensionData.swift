import AWSAPI
import ConsulAPI
import Foundation

extension Registrator {
    /// The mTLS data of every desired service, rewritten by the rule of docs/DECISIONS.md D46, so that a function
    /// never holds a stale leaf or misses a new root. One roots read per run; a leaf is read only
    /// for a value that must be written.
    func refreshExtensionData(_ services: [DesiredService], into report: inout SyncReport) async {
        guard !services.isEmpty else { return }
        let roots: CARoots
        do throws(ConsulError) {
            let response = try await consulCall(.GET, "/v1/agent/connect/ca/roots")
            roots = try ConsulClient.decode(CARoots.self, response.body, endpoint: "/v1/agent/connect/ca/roots")
        } catch {
            report.failures.append("reading the CA roots for the mTLS data failed: \(error)")
            return
        }
        let policy = ExtensionDataPolicy(tier: settings.extensionDataTier)
        let outcomes = await boundedMap(services, limit: settings.maximumConcurrency, skipped: { _ in ParameterOutcome.current }) { service in
            await self.refreshExtensionData(of: service, roots: roots, policy: policy)
        }
        for outcome in outcomes {
            switch outcome {
            case .written: report.parametersWritten += 1
            case .current: break
            case .failed(let error): report.errors.append(error)
            }
        }
    }

    enum ParameterOutcome: Sendable {
        case written
        case current
        case failed(SyncPlan.FunctionError)
    }

    func refreshExtensionData(of service: DesiredService, roots: CARoots, policy: ExtensionDataPolicy) async -> ParameterOutcome {
        guard let name = settings.extensionDataName(for: service) else { return .current }
        func failed(_ message: String) -> ParameterOutcome {
            .failed(SyncPlan.FunctionError(function: service.function, message: "mTLS data of \(service.name) at \(name): \(message)"))
        }
        var stored: String?
        do throws(AWSAPIError) {
            stored = try await aws.ssm.getParameter(name: name, withDecryption: true)
        } catch  where error.isNotFound {
            stored = nil
        } catch {
            return failed("reading it failed: \(error)")
        }
        guard let reason = policy.refreshReason(stored: stored, roots: roots, now: now()) else { return .current }

        // No namespace or partition (README.md, `lambda-mesh-extension`): an agent refuses leaves for another partition.
        let leafPath = "/v1/agent/connect/ca/leaf/\(Self.pathSegment(service.name))"
        let leaf: LeafCertificate
        do throws(ConsulError) {
            let response = try await consulCall(.GET, leafPath, scope: .default)
            leaf = try ConsulClient.decode(LeafCertificate.self, response.body, endpoint: leafPath)
        } catch {
            return failed("reading its leaf certificate failed: \(error)")
        }
        guard let (data, warning) = policy.value(leaf: leaf, roots: roots) else {
            return failed("the value is over the \(policy.limit)-byte limit of its tier even with the active root only")
        }
        if let warning { logger.warning("\(warning)", metadata: ["service": "\(service.name)"]) }
        let value = data.json
        // Past half its lifetime the agent may still hand out the same leaf until it renews it:
        // writing the same value again would only cost a call.
        guard value != stored else { return .current }
        do throws(AWSAPIError) {
            try await aws.ssm.putParameter(name: name, value: value, secure: true, overwrite: true, tier: policy.tier(forValueOfSize: value.utf8.count))
        } catch {
            return failed("writing it failed: \(error)")
        }
        logger.info("mTLS data written", metadata: ["service": "\(service.name)", "parameter": "\(name)", "reason": "\(reason)"])
        return .written
    }
}
