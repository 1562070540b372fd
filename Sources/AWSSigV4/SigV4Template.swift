import Crypto

import struct Foundation.Date

/// A request shape signed many times (the same function's Invoke call): the method, URI, query and
/// the fixed headers are canonicalized once; each signature only fills in the values that change.
///
/// Produces exactly the signature `SigV4Signer.sign` gives for the same request (tested against it).
public struct SigV4Template: Sendable {
    enum Segment: Sendable {
        /// `name:value\n`, ready to append.
        case fixed([UInt8])
        /// `name:` then a value supplied per signature (`slot` into the caller's values, or one of
        /// the signer's own headers).
        case variable(name: [UInt8], slot: Slot)
    }

    enum Slot: Sendable, Equatable {
        case caller(Int)
        case date
        case sessionToken
        case contentSHA256
    }

    /// The canonical request's opening that never changes (method, URI, query and the fixed
    /// headers sorted before the first variable one), hashed once.
    let lead: SHA256Prefix
    /// The headers after `lead`.
    let segments: [Segment]
    let signedHeadersWithToken: [UInt8]
    let signedHeadersWithoutToken: [UInt8]
    let variableCount: Int
    /// The canonical request's length without the variable values: its buffer is sized once.
    let lengthWithoutValues: Int
    /// Whether the payload hash is also a header (`x-amz-content-sha256`), inside the canonical
    /// request: then nothing after the date is the same from one signature to the next.
    let hasContentSHA256Header: Bool
    /// The template's identity among the heads its signer's key cache keeps (`SignatureHeads`).
    let identity = Identity()

    final class Identity: Sendable {}
}

extension SigV4Signer {
    /// Prepares `method path?query` with headers whose values never change (`fixedHeaders`) and
    /// headers whose values are given at each signature (`variableHeaderNames`, in that order).
    public func prepare(method: String, path: String, query: String = "", fixedHeaders: [SigV4Header], variableHeaderNames: [String]) -> SigV4Template {
        var prefix: [UInt8] = []
        prefix.appendUTF8(method)
        prefix.append(UInt8(ascii: "\n"))
        CanonicalRequest.appendURI(path, normalize: options.normalizePath, to: &prefix)
        prefix.append(UInt8(ascii: "\n"))
        CanonicalRequest.appendQuery(query, to: &prefix)
        prefix.append(UInt8(ascii: "\n"))

        var entries: [(name: String, segment: SigV4Template.Segment, isToken: Bool)] = []
        for header in fixedHeaders {
            let name = CanonicalRequest.lowercased(header.name)
            var line: [UInt8] = []
            line.appendUTF8(name)
            line.append(UInt8(ascii: ":"))
            line.appendUTF8(CanonicalRequest.canonicalValue(header.value))
            line.append(UInt8(ascii: "\n"))
            entries.append((name, .fixed(line), false))
        }
        for (index, header) in variableHeaderNames.enumerated() {
            let name = CanonicalRequest.lowercased(header)
            entries.append((name, .variable(name: Array(name.utf8), slot: .caller(index)), false))
        }
        entries.append(("x-amz-date", .variable(name: Array("x-amz-date".utf8), slot: .date), false))
        if options.signSessionToken {
            entries.append(("x-amz-security-token", .variable(name: Array("x-amz-security-token".utf8), slot: .sessionToken), true))
        }
        if options.addContentSHA256Header {
            entries.append(("x-amz-content-sha256", .variable(name: Array("x-amz-content-sha256".utf8), slot: .contentSHA256), false))
        }
        let names = entries.map(\.name)
        precondition(Set(names).count == names.count, "a header name appears twice in a SigV4 template")
        entries.sort { $0.name < $1.name }
        func signedHeaders(withToken: Bool) -> [UInt8] {
            Array(entries.filter { withToken || !$0.isToken }.map(\.name).joined(separator: ";").utf8)
        }
        // The opening up to the first variable header is hashed once, for every signature.
        var lead = prefix
        var rest = entries[...]
        while let first = rest.first, case .fixed(let line) = first.segment {
            lead.append(contentsOf: line)
            rest = rest.dropFirst()
        }
        // Each line: name, `:`, value, `\n`; the signer's date (16) and hashes (64) have fixed lengths.
        var lengthWithoutValues = signedHeaders(withToken: true).count + 2 + 2 * SHA256.byteCount
        for entry in rest {
            switch entry.segment {
            case .fixed(let line): lengthWithoutValues += line.count
            case .variable(let name, let slot):
                lengthWithoutValues += name.count + 2
                if slot == .date { lengthWithoutValues += 16 }
                if slot == .contentSHA256 { lengthWithoutValues += 2 * SHA256.byteCount }
            }
        }
        return SigV4Template(
            lead: SHA256Prefix(lead),
            segments: rest.map(\.segment),
            signedHeadersWithToken: signedHeaders(withToken: true),
            signedHeadersWithoutToken: signedHeaders(withToken: false),
            variableCount: variableHeaderNames.count,
            lengthWithoutValues: lengthWithoutValues,
            hasContentSHA256Header: options.addContentSHA256Header
        )
    }

    /// Signs one request of `template`'s shape, hashing `payload` straight into the canonical request
    /// (one SHA-256 pass, no intermediate hash string).
    public func sign(_ template: SigV4Template, values: [String], payload: UnsafeRawBufferPointer, credentials: Credentials, date: Date) -> SigV4Signature {
        let digest = SHA256.hash(data: payload)
        return sign(template, values: values, credentials: credentials, date: date) { canonical in Hex.append(digest, to: &canonical) }
    }

    /// Signs one request of `template`'s shape with a single variable header. A payload that opens
    /// with `prefix`'s bytes is hashed from its kept state (`SHA256Prefix`).
    public func sign(
        _ template: SigV4Template, value: String, payload: UnsafeRawBufferPointer, prefix: SHA256Prefix? = nil, credentials: Credentials, date: Date
    ) -> SigV4Signature {
        let digest = prefix?.hash(payload) ?? SHA256.hash(data: payload)
        return sign(template, values: CollectionOfOne(value), credentials: credentials, date: date) { canonical in Hex.append(digest, to: &canonical) }
    }

    /// Signs one request of `template`'s shape.
    public func sign(_ template: SigV4Template, values: [String], payloadHash: String, credentials: Credentials, date: Date) -> SigV4Signature {
        sign(template, values: values, credentials: credentials, date: date) { canonical in canonical.appendUTF8(payloadHash) }
    }

    private func sign<Values: RandomAccessCollection<String>>(_ template: SigV4Template, values: Values, credentials: Credentials, date: Date, appendPayloadHash: (inout [UInt8]) -> Void)
        -> SigV4Signature where Values.Index == Int
    {
        precondition(values.count == template.variableCount, "one value per variable header")
        let amzDate = keyCache.amzDate(date)
        let token = credentials.sessionToken.flatMap { $0.isEmpty ? nil : $0 }
        let signToken = token != nil && options.signSessionToken
        guard !template.hasContentSHA256Header, !options.addContentSHA256Header else {
            // The payload hash is also a header, inside the canonical request: nothing after the
            // date is the same from one signature to the next.
            var canonical = canonicalRequest(template, values: values, date: amzDate, token: signToken ? token : nil, appendPayloadHash: appendPayloadHash)
            let hashStart = canonical.count
            appendPayloadHash(&canonical)
            let payloadHash = String(decoding: canonical[hashStart...], as: UTF8.self)
            let digest = canonical.withUnsafeBytes { template.lead.hash(after: $0) }
            canonical.removeAll(keepingCapacity: true)
            let signedHeaders = signToken ? template.signedHeadersWithToken : template.signedHeadersWithoutToken
            return finish(canonicalDigest: digest, signedHeaders: signedHeaders, date: amzDate, credentials: credentials, token: token, payloadHash: payloadHash, stringToSign: &canonical)
        }
        let head = keyCache.heads.head(
            template: ObjectIdentifier(template.identity), timestamp: amzDate.timestamp, values: values, token: signToken ? token : nil,
            secret: credentials.secretAccessKey, region: region, service: service
        ) { key in
            let canonical = canonicalRequest(template, values: values, date: amzDate, token: key.token, appendPayloadHash: appendPayloadHash)
            let (opening, scope) = stringToSignOpening(date: amzDate)
            let mac = keyCache.keyedHMAC(secret: credentials.secretAccessKey, day: amzDate.day, region: region, service: service)
            return SignatureHeads.Head(
                key: key,
                canonical: canonical.withUnsafeBytes { template.lead.state(after: $0) },
                stringToSign: opening.withUnsafeBytes { mac.absorbing($0) },
                scope: Array(opening[scope]),
                signedHeaders: signToken ? template.signedHeadersWithToken : template.signedHeadersWithoutToken
            )
        }
        // What differs: the payload's hash, ending the canonical request, and the canonical
        // request's hash, ending the string to sign.
        var tail: [UInt8] = []
        tail.reserveCapacity(2 * SHA256.byteCount)
        appendPayloadHash(&tail)
        var canonical = head.canonical
        tail.withUnsafeBytes { canonical.update(bufferPointer: $0) }
        tail.removeAll(keepingCapacity: true)
        Hex.append(canonical.finalize(), to: &tail)
        let signature = tail.withUnsafeBytes { head.stringToSign.authenticationCode(for: $0) }
        return SigV4Signature(
            amzDate: amzDate.timestamp,
            authorization: authorization(accessKeyID: credentials.accessKeyID, scope: head.scope[...], signedHeaders: head.signedHeaders, signature: signature),
            sessionToken: token,
            contentSHA256: nil
        )
    }

    /// The canonical request after the template's `lead`, through the `\n` after the signed
    /// headers: everything but the payload hash at its end. `token`: the session token to sign,
    /// if any.
    private func canonicalRequest<Values: RandomAccessCollection<String>>(
        _ template: SigV4Template, values: Values, date: AMZDate, token: String?, appendPayloadHash: (inout [UInt8]) -> Void
    ) -> [UInt8] where Values.Index == Int {
        var canonical: [UInt8] = []
        var length = template.lengthWithoutValues + (token?.utf8.count ?? 0)
        for value in values { length += value.utf8.count }
        canonical.reserveCapacity(length)
        for segment in template.segments {
            switch segment {
            case .fixed(let line):
                canonical.append(contentsOf: line)
            case .variable(let name, let slot):
                let value: String
                switch slot {
                case .caller(let index): value = CanonicalRequest.canonicalValue(values[values.startIndex + index])
                case .date: value = date.timestamp
                case .sessionToken:
                    guard let token else { continue }
                    value = CanonicalRequest.canonicalValue(token)
                case .contentSHA256:
                    canonical.append(contentsOf: name)
                    canonical.append(UInt8(ascii: ":"))
                    appendPayloadHash(&canonical)
                    canonical.append(UInt8(ascii: "\n"))
                    continue
                }
                canonical.append(contentsOf: name)
                canonical.append(UInt8(ascii: ":"))
                canonical.appendUTF8(value)
                canonical.append(UInt8(ascii: "\n"))
            }
        }
        canonical.append(UInt8(ascii: "\n"))
        canonical.append(contentsOf: token != nil ? template.signedHeadersWithToken : template.signedHeadersWithoutToken)
        canonical.append(UInt8(ascii: "\n"))
        return canonical
    }
}
