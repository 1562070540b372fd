/// Builds SigV4's canonical request (method, URI, query, headers, signed headers, payload hash).
enum CanonicalRequest {
    /// Writes the canonical request into `out` and returns the signed-headers list.
    static func build(
        _ request: SigV4Request,
        headers: [SigV4Header],
        normalizePath: Bool,
        into out: inout [UInt8]
    ) -> String {
        out.removeAll(keepingCapacity: true)
        out.reserveCapacity(512)
        out.append(contentsOf: request.method.utf8)
        out.append(UInt8(ascii: "\n"))
        appendURI(request.path, normalize: normalizePath, to: &out)
        out.append(UInt8(ascii: "\n"))
        appendQuery(request.query, to: &out)
        out.append(UInt8(ascii: "\n"))
        let signedHeaders = appendHeaders(headers, to: &out)
        out.append(UInt8(ascii: "\n"))
        out.append(contentsOf: signedHeaders.utf8)
        out.append(UInt8(ascii: "\n"))
        out.append(contentsOf: request.payloadHash.utf8)
        return signedHeaders
    }

    // MARK: URI

    /// The path as sent, optionally normalized, then URI-encoded once more with `/` kept.
    static func appendURI(_ path: String, normalize: Bool, to out: inout [UInt8]) {
        if path.isEmpty {
            out.append(UInt8(ascii: "/"))
            return
        }
        if normalize {
            URIEncoding.append(normalizedPath(Array(path.utf8)), keepSlash: true, to: &out)
        } else {
            URIEncoding.append(path.utf8, keepSlash: true, to: &out)
        }
    }

    /// Removes `.` and `..` segments and empty segments (repeated slashes), keeping a trailing slash.
    static func normalizedPath(_ path: [UInt8]) -> [UInt8] {
        let segments = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true)
        var kept: [ArraySlice<UInt8>] = []
        kept.reserveCapacity(segments.count)
        for segment in segments {
            if segment.elementsEqual([UInt8(ascii: ".")]) { continue }
            if segment.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                _ = kept.popLast()
                continue
            }
            kept.append(segment)
        }
        var out: [UInt8] = [UInt8(ascii: "/")]
        out.reserveCapacity(path.count)
        for (index, segment) in kept.enumerated() {
            if index > 0 { out.append(UInt8(ascii: "/")) }
            out.append(contentsOf: segment)
        }
        let last = segments.last
        let endsWithSlash = path.last == UInt8(ascii: "/")
        let endsWithDots = last.map { $0.allSatisfy { $0 == UInt8(ascii: ".") } && $0.count <= 2 } ?? false
        if !kept.isEmpty && (endsWithSlash || endsWithDots) {
            out.append(UInt8(ascii: "/"))
        }
        return out
    }

    // MARK: Query

    /// Parameters decoded then re-encoded, sorted by name then value, joined with `&`.
    static func appendQuery(_ query: String, to out: inout [UInt8]) {
        guard !query.isEmpty else { return }
        var pairs: [(name: [UInt8], value: [UInt8])] = []
        for part in Array(query.utf8).split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let name: ArraySlice<UInt8>
            let value: ArraySlice<UInt8>
            if let equals = part.firstIndex(of: UInt8(ascii: "=")) {
                name = part[part.startIndex..<equals]
                value = part[(equals + 1)...]
            } else {
                name = part
                value = []
            }
            var encodedName = [UInt8]()
            var encodedValue = [UInt8]()
            URIEncoding.append(URIEncoding.percentDecode(name), keepSlash: false, to: &encodedName)
            URIEncoding.append(URIEncoding.percentDecode(value), keepSlash: false, to: &encodedValue)
            pairs.append((encodedName, encodedValue))
        }
        pairs.sort { lhs, rhs in
            if lhs.name != rhs.name { return lhs.name.lexicographicallyPrecedes(rhs.name) }
            return lhs.value.lexicographicallyPrecedes(rhs.value)
        }
        for (index, pair) in pairs.enumerated() {
            if index > 0 { out.append(UInt8(ascii: "&")) }
            out.append(contentsOf: pair.name)
            out.append(UInt8(ascii: "="))
            out.append(contentsOf: pair.value)
        }
    }

    // MARK: Headers

    /// `name:value\n` per header name (lower-cased, sorted; repeated names joined with `,`),
    /// returning the `;`-joined signed header names.
    static func appendHeaders(_ headers: [SigV4Header], to out: inout [UInt8]) -> String {
        var entries: [(name: [UInt8], value: [UInt8])] = []
        entries.reserveCapacity(headers.count)
        for header in headers {
            entries.append((lowercased(header.name), canonicalValue(header.value)))
        }
        // Stable: values of a repeated name keep their order.
        let order = entries.indices.sorted { lhs, rhs in
            if entries[lhs].name != entries[rhs].name {
                return entries[lhs].name.lexicographicallyPrecedes(entries[rhs].name)
            }
            return lhs < rhs
        }
        var signed = [UInt8]()
        var previous: [UInt8]? = nil
        for index in order {
            let entry = entries[index]
            if entry.name == previous {
                out.removeLast()  // the "\n" of the previous value
                out.append(UInt8(ascii: ","))
            } else {
                if previous != nil { signed.append(UInt8(ascii: ";")) }
                signed.append(contentsOf: entry.name)
                out.append(contentsOf: entry.name)
                out.append(UInt8(ascii: ":"))
            }
            out.append(contentsOf: entry.value)
            out.append(UInt8(ascii: "\n"))
            previous = entry.name
        }
        return String(decoding: signed, as: UTF8.self)
    }

    static func lowercased(_ name: String) -> [UInt8] {
        name.utf8.map { byte in
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte + 32 : byte
        }
    }

    /// Trims the value and folds every run of white space (including line folds) into one space.
    static func canonicalValue(_ value: String) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(value.utf8.count)
        var pendingSpace = false
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: "\n"):
                pendingSpace = !out.isEmpty
            default:
                if pendingSpace {
                    out.append(UInt8(ascii: " "))
                    pendingSpace = false
                }
                out.append(byte)
            }
        }
        return out
    }
}
