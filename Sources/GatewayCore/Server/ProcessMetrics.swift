import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The standard process metrics of Prometheus' client libraries, read from /proc/self when
/// `/metrics` is scraped (https://prometheus.io/docs/instrumenting/writing_clientlibs/#process-metrics).
struct ProcessMetrics {
    var cpuSeconds: Double?
    var residentBytes: Double?
    var virtualBytes: Double?
    var openFDs: Double?
    var maxFDs: Double?
    var startTimeSeconds: Double?

    /// The figures now; one that cannot be read (no /proc) is nil and left out.
    static func read() -> ProcessMetrics {
        var figures = ProcessMetrics()
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8), let fields = statFields(stat), fields.count > 22, ticks > 0 {
            // After the command's `)`: state is field 3; utime 14, stime 15, starttime 22, vsize 23, rss 24 (man 5 proc).
            if let utime = Double(fields[11]), let stime = Double(fields[12]) { figures.cpuSeconds = (utime + stime) / ticks }
            if let start = Double(fields[19]), let boot = bootTime() { figures.startTimeSeconds = boot + start / ticks }
            figures.virtualBytes = Double(fields[20])
            if let pages = Double(fields[21]) { figures.residentBytes = pages * pageSize }
        }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            // The directory listing's own descriptor is among them while it is read.
            figures.openFDs = Double(max(0, entries.count - 1))
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { figures.maxFDs = Double(limit.rlim_cur) }
        return figures
    }

    /// The fields of /proc/self/stat after the command name (which may itself hold spaces and `)`).
    static func statFields(_ stat: String) -> [Substring]? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// Boot time in seconds since the epoch (`btime` of /proc/stat).
    static func bootTime() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}
