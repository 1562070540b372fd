import ConsulAPI
import LambdaInvoke

/// A service the registrator manages in Consul now: a catalog instance tagged
/// `managed-by-lambda-registrator`, with its service-defaults entry if it has one.
public struct ManagedService: Sendable, Hashable {
    public var name: String
    public var scope: ConsulScope
    public var entry: ServiceDefaults?

    public init(name: String, scope: ConsulScope = .default, entry: ServiceDefaults?) {
        self.name = name
        self.scope = scope
        self.entry = entry
    }

    public struct Key: Sendable, Hashable, Comparable, CustomStringConvertible {
        public var scope: ConsulScope
        public var name: String

        public static func < (lhs: Key, rhs: Key) -> Bool { (lhs.scope, lhs.name) < (rhs.scope, rhs.name) }
        public var description: String { scope.qualified(name) }
    }

    public var key: Key { Key(scope: scope, name: name) }

    /// The function the service belongs to: the one its entry's ARN names, else its own name
    /// (deletes go by it: docs/DECISIONS.md D43, D58).
    public var owner: String {
        ownerARN?.functionName ?? name
    }

    /// The ARN in the service's entry, when it has a readable one.
    public var ownerARN: FunctionARN? {
        entry.flatMap(LambdaArguments.init(entry:)).flatMap { try? FunctionARN(parsing: $0.arn) }
    }
}

/// The AWS partition, region and account whose functions a registrator lists: a service whose ARN
/// names another is another registrator's, never "a function that does not exist".
public struct FunctionHome: Sendable, Hashable {
    public var partition: String
    public var region: String
    public var accountID: String

    public init(partition: String, region: String, accountID: String) {
        self.partition = partition
        self.region = region
        self.accountID = accountID
    }

    public init(_ arn: FunctionARN) {
        self.init(partition: arn.partition, region: arn.region, accountID: arn.accountID)
    }
}

/// What one sync (full, or one function's event) writes and deletes, decided without I/O
/// (docs/DECISIONS.md D43 to D45).
public struct SyncPlan: Sendable, Hashable {
    public struct Upsert: Sendable, Hashable {
        public var service: DesiredService
        public var reason: String
    }

    public struct Delete: Sendable, Hashable {
        public var managed: ManagedService
        public var reason: String
        public var service: ManagedService.Key { managed.key }
    }

    /// An error tied to one function: a bad tag value, unreadable tags, a name conflict.
    public struct FunctionError: Sendable, Hashable {
        public var function: String
        public var message: String

        public init(function: String, message: String) {
            self.function = function
            self.message = message
        }
    }

    public var upserts: [Upsert] = []
    public var deletes: [Delete] = []
    /// Desired services that already say the right thing: no write.
    public var unchanged: [DesiredService] = []
    /// Every desired service, written or not (for the mTLS data).
    public var desired: [DesiredService] = []
    public var errors: [FunctionError] = []
    /// Functions left alone on purpose (other datacenter, unmanaged partition, CE with scope tags) or
    /// alias services left out, with why.
    public var skipped: [FunctionError] = []
    /// Managed services kept only because their owner's state is unknown or the listing was incomplete.
    public var keptForSafety: [ManagedService.Key] = []

    /// - Parameters:
    ///   - functions: the intent of every function this sync knows about (the listing, or the one
    ///     function of an event).
    ///   - listingComplete: every page of `ListFunctions` was read. Only then may a managed service
    ///     whose owner is absent from `functions` be deleted.
    ///   - existing: the managed services in Consul (for an event: those the function owns).
    ///   - otherOwners: services other functions own (their managed services, or functions that
    ///     exist under an alias service's name), so that an alias never takes over another's service.
    ///   - foreign: services in Consul the registrator does not manage (no managed instance on its
    ///     node): never taken over, since a tag on a function would otherwise claim any mesh identity.
    ///   - home: the partition, region and account of the listed functions; nil when unknown (an
    ///     empty listing), and then no service is deleted as belonging to an absent function.
    public init(
        functions: [String: FunctionIntent],
        listingComplete: Bool,
        existing: [ManagedService],
        otherOwners: [ManagedService.Key: String] = [:],
        foreign: Set<ManagedService.Key> = [],
        home: FunctionHome? = nil
    ) {
        var wanted: [ManagedService.Key: DesiredService] = [:]
        for function in functions.keys.sorted() {
            switch functions[function]! {
            case .enabled(let services):
                for service in services {
                    let key = ManagedService.Key(scope: service.scope, name: service.name)
                    // docs/DECISIONS.md D59: a function's own name beats another function's alias.
                    if service.name != function, functions[service.name] != nil || otherOwners[key].map({ $0 != function }) == true {
                        errors.append(FunctionError(function: function, message: "alias service \(service.name) has the name of another function; the function wins, the alias is not registered"))
                        continue
                    }
                    if foreign.contains(key) {
                        errors.append(FunctionError(function: function, message: "service \(key) exists in Consul and is not managed by the registrator; not taken over"))
                        continue
                    }
                    if let holder = wanted[key] {
                        errors.append(FunctionError(function: function, message: "service \(key) is already wanted by function \(holder.function); not registered twice"))
                        continue
                    }
                    wanted[key] = service
                }
            case .disabled:
                break
            case .ignored(let reason), .skipped(let reason):
                skipped.append(FunctionError(function: function, message: reason))
            case .invalid(let message), .unknown(let message):
                errors.append(FunctionError(function: function, message: message))
            }
        }

        let current = Dictionary(existing.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
        for key in wanted.keys.sorted() {
            let service = wanted[key]!
            desired.append(service)
            if let managed = current[key] {
                if let reason = ServiceDefaultsEdit.reasonToWrite(service, current: managed.entry) {
                    upserts.append(Upsert(service: service, reason: reason))
                } else {
                    unchanged.append(service)
                }
            } else {
                upserts.append(Upsert(service: service, reason: "not registered"))
            }
        }

        for key in current.keys.sorted() where wanted[key] == nil {
            let managed = current[key]!
            let owner = managed.owner
            if let arn = managed.ownerARN, let home, FunctionHome(arn) != home {
                // Another region's or account's registrator wrote it.
                keptForSafety.append(key)
                continue
            }
            switch functions[owner] {
            case .disabled?:
                deletes.append(Delete(managed: managed, reason: "function \(owner) is not tagged enabled"))
            case .enabled?:
                deletes.append(Delete(managed: managed, reason: "function \(owner) no longer asks for it"))
            case nil where listingComplete && home != nil:
                deletes.append(Delete(managed: managed, reason: "function \(owner) does not exist"))
            case nil, .unknown?, .invalid?, .skipped?, .ignored?:
                // docs/DECISIONS.md D43: what is not known is never a reason to deregister.
                keptForSafety.append(key)
            }
        }
    }
}
