/// Reads samples out of Prometheus' text exposition format, for tests of `/metrics`.
public struct PrometheusText: Sendable {
    /// Sample lines by series as written (`name{label="value",...}` or `name`).
    public let samples: [String: Double]

    public init(_ text: String) {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        self.samples = samples
    }

    /// The value of one series: `value("requests_total", ["service": "orders", "status": "200"])`
    /// matches whatever the labels' order in the text.
    public func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { series, _ in
            guard series == name || series.hasPrefix(name + "{") else { return false }
            return Self.labels(of: series) == labels
        }?.value
    }

    /// The sum over every series of `name` whose labels include `labels`.
    public func sum(_ name: String, where labels: [String: String] = [:]) -> Double {
        samples.filter { series, _ in
            guard series == name || series.hasPrefix(name + "{") else { return false }
            let own = Self.labels(of: series)
            return labels.allSatisfy { own[$0.key] == $0.value }
        }.values.reduce(0, +)
    }

    static func labels(of series: String) -> [String: String] {
        guard let open = series.firstIndex(of: "{"), series.hasSuffix("}") else { return [:] }
        var labels: [String: String] = [:]
        var rest = series[series.index(after: open)..<series.index(before: series.endIndex)]
        while let equals = rest.firstIndex(of: "=") {
            let key = rest[..<equals].trimmingPrefix(",")
            rest = rest[rest.index(equals, offsetBy: 2)...]  // past `="`
            guard let close = rest.firstIndex(of: "\"") else { break }
            labels[String(key)] = String(rest[..<close])
            rest = rest[rest.index(after: close)...]
        }
        return labels
    }
}
