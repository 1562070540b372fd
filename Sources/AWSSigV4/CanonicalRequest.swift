/// Builds SigV4's canonical request (method, URI, query, headers, signed headers, payload hash).
enum CanonicalRequest {
    /// Writes the canonical request into `out` and returns the signed-headers list.
    static func build(
        _ request: SigV4Request,
        headers: inout [SigV4Header],
        normalizePath: Bool,
        into out: inout [UInt8]
    ) -> [UInt8] {
        out.removeAll(keepingCapacity: true)
        out.reserveCapacity(512)
        out.appendUTF8(request.method)
        out.append(UInt8(ascii: "\n"))
        appendURI(request.path, normalize: normalizePath, to: &out)
        out.append(UInt8(ascii: "\n"))
        appendQuery(request.query, to: &out)
        out.append(UInt8(ascii: "\n"))
        let signedHeaders = appendHeaders(&headers, to: &out)
        out.append(UInt8(ascii: "\n"))
        out.append(contentsOf: signedHeaders)
        out.append(UInt8(ascii: "\n"))
        out.appendUTF8(request.payloadHash)
        return signedHeaders
    }

    // MARK: URI

    /// The path as sent, optionally normalized, then URI-encoded once more with `/` kept.
    static func appendURI(_ path: String, normalize: Bool, to out: inout [UInt8]) {
        if path.isEmpty {
            out.append(UInt8(ascii: "/"))
            return
        }
        if normalize && needsNormalization(path) {
            URIEncoding.append(normalizedPath(Array(path.utf8)), keepSlash: true, to: &out)
        } else {
            URIEncoding.append(path, keepSlash: true, to: &out)
        }
    }

    /// Whether the path has an empty, `.` or `..` segment (most paths have none).
    static func needsNormalization(_ path: String) -> Bool {
        var path = path
        return path.withUTF8 { bytes in
            guard bytes.first == UInt8(ascii: "/") else { return true }
            var previous: UInt8 = 0
            for byte in bytes {
                if previous == UInt8(ascii: "/") && (byte == UInt8(ascii: "/") || byte == UInt8(ascii: ".")) { return true }
                previous = byte
            }
            return false
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
    /// `headers` must already be lower-cased with canonical values (the signer prepares them).
    static func appendHeaders(_ entries: inout [SigV4Header], to out: inout [UInt8]) -> [UInt8] {
        // Insertion sort: stable (values of a repeated name keep their order) and allocation-free
        // for the handful of headers a request signs.
        for index in entries.indices.dropFirst() {
            let entry = entries[index]
            var position = index
            while position > 0, entry.name < entries[position - 1].name {
                entries[position] = entries[position - 1]
                position -= 1
            }
            entries[position] = entry
        }
        var signed = [UInt8]()
        signed.reserveCapacity(entries.count * 16)
        for (index, entry) in entries.enumerated() {
            if index > 0, entry.name == entries[index - 1].name {
                out.removeLast()  // the "\n" of the previous value
                out.append(UInt8(ascii: ","))
            } else {
                if index > 0 { signed.append(UInt8(ascii: ";")) }
                signed.appendUTF8(entry.name)
                out.appendUTF8(entry.name)
                out.append(UInt8(ascii: ":"))
            }
            out.appendUTF8(entry.value)
            out.append(UInt8(ascii: "\n"))
        }
        return signed
    }

    static func lowercased(_ name: String) -> String {
        var copy = name
        guard copy.withUTF8({ $0.contains { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) } }) else { return name }
        return String(decoding: name.utf8.map { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) ? $0 + 32 : $0 }, as: UTF8.self)
    }

    /// Trims the value and folds every run of white space (including line folds) into one space.
    static func canonicalValue(_ value: String) -> String {
        if isCanonical(value) { return value }
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
        return String(decoding: out, as: UTF8.self)
    }

    /// No leading or trailing white space, no tab or line break, no double space.
    static func isCanonical(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { bytes in
            var previous: UInt8 = UInt8(ascii: " ")
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "\t"), UInt8(ascii: "\r"), UInt8(ascii: "\n"): return false
                case UInt8(ascii: " ") where previous == UInt8(ascii: " "): return false
                default: previous = byte
                }
            }
            return previous != UInt8(ascii: " ") || bytes.isEmpty
        }
    }
}

extension [UInt8] {
    /// Appends a string's UTF-8 in one copy (`append(contentsOf: string.utf8)` goes byte by byte).
    @inline(__always)
    mutating func appendUTF8(_ string: String) {
        var string = string
        string.withUTF8 { append(contentsOf: $0) }
    }
}
