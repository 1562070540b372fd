import X509

extension Certificate {
    /// The `spiffe://` URI SANs, in order. Throws when the SAN extension does not parse.
    func spiffeURIs() throws -> [String] {
        let names: [GeneralName] = try extensions.subjectAlternativeNames.map { Array($0) } ?? []
        return names.compactMap { name -> String? in
            if case .uniformResourceIdentifier(let uri) = name, uri.lowercased().hasPrefix("spiffe://") { return uri }
            return nil
        }
    }
}
