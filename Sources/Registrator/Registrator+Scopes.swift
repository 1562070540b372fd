import ConsulAPI
import Foundation
import LambdaInvoke

/// What the registrator sees of one partition and namespace in Consul.
struct ScopeView: Sendable {
    /// Services with an instance tagged `managed-by-lambda-registrator` on the registrator's node,
    /// with their service-defaults entries.
    var managed: [ManagedService]
    /// Every other service of the scope: never taken over by a function of the same name.
    var foreign: Set<ManagedService.Key>
}

extension Registrator {
    /// The scopes a sync covers (`ENTERPRISE`, `PARTITIONS`: docs/COMPATIBILITY.md, Environment):
    /// Community Edition has one scope; Enterprise every namespace of every managed
    /// partition. A partition whose namespaces cannot be listed fails the run, and nothing in it is
    /// written or deleted.
    func managedScopes(_ report: inout SyncReport) async -> (scopes: [ConsulScope], unreadablePartitions: Set<String>) {
        guard settings.enterprise else { return ([.default], []) }
        var scopes: [ConsulScope] = []
        var unreadable: Set<String> = []
        for partition in settings.partitions {
            do throws(ConsulError) {
                let response = try await consulCall(.GET, "/v1/namespaces", scope: ConsulScope(partition: partition))
                let namespaces = try ConsulClient.decode([NamespaceName].self, response.body, endpoint: "/v1/namespaces")
                scopes += namespaces.map { ConsulScope(partition: partition, namespace: $0.Name) }
            } catch {
                report.failures.append("listing the namespaces of partition \(partition) failed: \(error)")
                unreadable.insert(partition)
            }
        }
        return (scopes.sorted(), unreadable)
    }

    struct NamespaceName: Decodable {
        var Name: String
    }

    struct NodeServices: Decodable {
        struct Service: Decodable {
            var Service: String
            var Tags: [String]?
        }

        var Services: [Service]?
    }

    /// One scope: the registrator's node's services, every service name, and the service-defaults
    /// entries, three list reads whatever the number of services.
    func scopeView(_ scope: ConsulScope) async throws(ConsulError) -> ScopeView {
        let nodePath = "/v1/catalog/node-services/\(Self.pathSegment(settings.nodeName))"
        let node = try await consulCall(.GET, nodePath, scope: scope, allowNotFound: true)
        var ours: Set<String> = []
        if node.status != 404, node.body.readableBytes > 0 {
            // `null` when the node does not exist (older agents), 404 on newer ones.
            let services = try ConsulClient.decode(NodeServices?.self, node.body, endpoint: nodePath)?.Services ?? []
            ours = Set(services.filter { $0.Tags?.contains(Self.managedTag) == true }.map(\.Service))
        }
        let catalog = try await consulCall(.GET, "/v1/catalog/services", scope: scope)
        let names = try ConsulClient.decode([String: [String]?].self, catalog.body, endpoint: "/v1/catalog/services").keys
        let foreign = Set(names.filter { !ours.contains($0) }.map { ManagedService.Key(scope: scope, name: $0) })

        let defaults = try await consulCall(.GET, "/v1/config/service-defaults", scope: scope)
        // A hidden entry would make its service look ownerless: then nothing here is decided.
        guard !defaults.metadata.filteredByACLs else {
            throw ConsulError(
                .status(403), endpoint: "/v1/config/service-defaults",
                "the token may not read every service-defaults entry of \(scope) (X-Consul-Results-Filtered-By-ACLs); give it service_prefix \"\" read")
        }
        let entries = try ConsulClient.decode([ServiceDefaults].self, defaults.body, endpoint: "/v1/config/service-defaults")
        let byName = Dictionary(entries.map { ($0.Name, $0) }, uniquingKeysWith: { first, _ in first })
        var managed: [ManagedService] = []
        for name in ours.sorted() {
            // Only names a function or alias can have: anything else was not written by a
            // registrator, and its name may not be safe in a Parameter Store path.
            guard Self.isServiceName(name) else {
                logger.warning("a service tagged \(Self.managedTag) has a name no function can have; left alone", metadata: ["service": "\(FunctionTags.printable(name))"])
                continue
            }
            managed.append(ManagedService(name: name, scope: scope, entry: byName[name]))
        }
        return ScopeView(managed: managed, foreign: foreign)
    }

    /// A function name, or one with an alias after `-`: letters, digits, `-` and `_`, at most
    /// 64 + 1 + 128 bytes.
    static func isServiceName(_ name: String) -> Bool {
        (1...193).contains(name.utf8.count) && FunctionTags.isNameText(name)
    }

    /// Every scope's view; a scope that cannot be read fails the run and nothing is decided there.
    func scopeViews(_ report: inout SyncReport) async -> (views: [ConsulScope: ScopeView], unreadable: (ConsulScope) -> Bool) {
        let (scopes, unreadablePartitions) = await managedScopes(&report)
        var views: [ConsulScope: ScopeView] = [:]
        for scope in scopes {
            do throws(ConsulError) {
                views[scope] = try await scopeView(scope)
            } catch {
                report.failures.append("reading the services of \(scope) failed: \(error)")
            }
        }
        let read = Set(views.keys)
        let enterprise = settings.enterprise
        let knownScopes = Set(scopes)
        return (
            views,
            { scope in
                if unreadablePartitions.contains(scope.partition) { return true }
                // A namespace that does not exist yet (Enterprise) has nothing to read.
                return knownScopes.contains(scope) ? !read.contains(scope) : !enterprise
            }
        )
    }
}
