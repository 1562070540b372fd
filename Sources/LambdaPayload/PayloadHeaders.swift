#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A payload's `headers` object (docs/COMPATIBILITY.md, Payload formats): names lower-cased and
/// sorted, repeated fields joined with `,` (`cookie` with `; `), pseudo-headers and hop-by-hop
/// fields left out.
///
/// A field whose value was escaped once for its connection (`HTTPField.preEscaped`: a mesh
/// connection's `x-forwarded-client-cert` element) and that is not repeated *leads*: it is written
/// first, and the payload opens with the headers object, so that every payload of the connection
/// begins with the same bytes (`RequestEncoder.lead`) and their hash is kept (`SHA256Prefix`).
struct PayloadHeaders {
    private let headers: [HTTPField]
    private let authority: String?
    /// Lower-cased names, each with its field's index (`nil`: the authority as `host`).
    private let fields: [(name: String, index: Int?)]
    /// Positions in `fields`, by name, repeated fields in arrival order.
    private let order: [Int]
    /// The position in `fields` of the field that leads.
    let lead: Int?

    /// About the bytes the `headers` member takes, for sizing the payload's buffer: names and
    /// values as they are (escaped values as escaped) and the quotes, colons and commas around
    /// them. A buffer sized for the values escaped beforehand alone was too small for a usual
    /// request's fields, and grown and copied once per payload.
    var estimatedBytes: Int {
        var total = 16
        for position in fields.indices {
            total += fields[position].name.utf8.count + 6
            if let index = fields[position].index {
                total += headers[index].preEscaped?.json.readableBytes ?? headers[index].value.utf8.count
            } else {
                total += authority?.utf8.count ?? 0
            }
        }
        return total
    }

    init(_ headers: [HTTPField], includeHost: Bool, includeCookie: Bool, authority: String?) {
        var fields: [(name: String, index: Int?)] = []
        fields.reserveCapacity(headers.count + 1)
        var sawHost = false
        var candidate: Int?
        for index in headers.indices {
            let name = headers[index].name.asciiLowercased
            if name.utf8.first == UInt8(ascii: ":") || HopByHop.contains(name) { continue }
            let length = name.utf8.count
            if length == 4 && name.equalsBytes("host") {
                guard includeHost else { continue }
                sawHost = true
            }
            if length == 6 && !includeCookie && name.equalsBytes("cookie") { continue }
            if candidate == nil, headers[index].preEscaped != nil { candidate = fields.count }
            fields.append((name, index))
        }
        if includeHost, !sawHost, authority != nil {
            fields.append(("host", nil))
        }
        // By the names' bytes (names are tokens, ASCII, so this is also `String`'s order), one
        // three-way comparison per step: `String`'s `<` and `==` went through its general
        // comparison, some 150 instructions each, twice per step.
        let order = fields.indices.sorted { lhs, rhs in
            let order = Self.compareBytes(fields[lhs].name, fields[rhs].name)
            return order < 0 || (order == 0 && lhs < rhs)
        }
        // Fields of one name are next to each other in `order`: the candidate leads when neither
        // neighbour shares its name.
        self.lead = candidate.flatMap { candidate in
            guard let position = order.firstIndex(of: candidate) else { return nil }
            let name = fields[candidate].name
            if position > 0, Self.compareBytes(fields[order[position - 1]].name, name) == 0 { return nil }
            if position + 1 < order.count, Self.compareBytes(fields[order[position + 1]].name, name) == 0 { return nil }
            return candidate
        }
        self.order = order
        self.headers = headers
        self.authority = authority
        self.fields = fields
    }

    /// The `headers` member where the payload's writer stands: at the payload's opening
    /// (`atOpening`) when a field leads, in its usual place when none does; elsewhere nothing.
    func writeMember(to writer: inout JSONWriter, atOpening: Bool) {
        guard atOpening == (lead != nil) else { return }
        writeOpening(to: &writer)
        var position = 0
        while position < order.count {
            let first = order[position]
            let name = fields[first].name
            position += 1
            if first == lead { continue }
            let single = position == order.count || Self.compareBytes(fields[order[position]].name, name) != 0
            if single, let index = fields[first].index, let preEscaped = headers[index].preEscaped {
                writer.key(name)
                writer.string(preEscaped)
                continue
            }
            var joined = value(first)
            while position < order.count, Self.compareBytes(fields[order[position]].name, name) == 0 {
                joined += (name.equalsBytes("cookie") ? "; " : ",") + value(order[position])
                position += 1
            }
            writer.member(name, joined)
        }
        writer.endObject()
    }

    /// `"headers":{` and the leading field, if any: with the payload's `{` before them, the bytes
    /// that every payload led by that field opens with (`RequestEncoder.lead`).
    func writeOpening(to writer: inout JSONWriter) {
        writer.key(literal: "headers")
        writer.beginObject()
        if let lead, let index = fields[lead].index, let preEscaped = headers[index].preEscaped {
            writer.key(fields[lead].name)
            writer.string(preEscaped)
        }
    }

    /// Negative, zero or positive as `lhs`'s UTF-8 bytes sort before, with, or after `rhs`'s.
    static func compareBytes(_ lhs: String, _ rhs: String) -> Int {
        let inPlace = lhs.utf8.withContiguousStorageIfAvailable { left in
            rhs.utf8.withContiguousStorageIfAvailable { right in
                let common = min(left.count, right.count)
                let order = common == 0 ? 0 : Int(memcmp(left.baseAddress!, right.baseAddress!, common))
                return order != 0 ? order : left.count - right.count
            }
        }
        if let inPlace, let order = inPlace { return order }
        return lhs.utf8.lexicographicallyPrecedes(rhs.utf8) ? -1 : (lhs.utf8.elementsEqual(rhs.utf8) ? 0 : 1)
    }

    private func value(_ position: Int) -> String {
        fields[position].index.map { headers[$0].value } ?? authority!
    }
}
