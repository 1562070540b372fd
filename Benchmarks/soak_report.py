#!/usr/bin/env python3
"""The report of Benchmarks/soak.sh: reads its work directory, prints the figures, writes them as
JSON and exits 1 when a rule of soak.sh's header is broken."""
import argparse
import glob
import json
import os
import re
import sys


def read(path, default=""):
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return default


def json_line(path):
    for line in reversed(read(path).splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def metrics(text):
    """Prometheus text -> {(name, labels-tuple): value}."""
    values = {}
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([-+0-9.eE]+|NaN)$", line)
        if match:
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', match.group(3) or "")))
            values[(match.group(1), labels)] = float(match.group(4))
    return values


def samples(path):
    rows = []
    for line in read(path).splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] != "dead":
            rows.append({"t": int(parts[0]), "rss_kb": int(parts[1]), "fds": int(parts[2]),
                         "connections_open": float(parts[3]) if len(parts) > 3 else None,
                         "held_answer_bytes": float(parts[4]) if len(parts) > 4 else None})
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("work")
    parser.add_argument("out")
    for name in ["--duration", "--rate", "--timeout", "--rotate-every", "--bulk-bytes"]:
        parser.add_argument(name, type=float, required=True)
    for name in ["--gateway-exit", "--configuration", "--date", "--stable"]:
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    work = args.work
    stable = args.stable.split(",")
    failures = []
    report = {"date": args.date, "configuration": args.configuration, "duration_s": args.duration, "rate_per_run": args.rate,
              "timeout_s": args.timeout, "rotate_every_s": args.rotate_every}

    # Stable services, as mesh-load saw them.
    load = {"h1": {"requests": 0, "failed": 0, "errors": {}, "runs": 0, "worst_p99_ms": 0, "worst_max_ms": 0},
            "h2": {"requests": 0, "failed": 0, "errors": {}, "runs": 0, "worst_p99_ms": 0, "worst_max_ms": 0}}
    for path in sorted(glob.glob(os.path.join(work, "load-*", "h*.out"))):
        protocol = os.path.basename(path)[:2]
        entry = load[protocol]
        result = json_line(path)
        entry["runs"] += 1
        if result is None:
            entry["failed"] += 1
            entry["errors"]["run_failed"] = entry["errors"].get("run_failed", 0) + 1
            failures.append(f"mesh-load run {os.path.relpath(path, work)} gave no result: {read(path)[-300:]!r}")
            continue
        entry["requests"] += result["requests"]
        entry["failed"] += result["error_count"]
        for kind, count in result["errors"].items():
            entry["errors"][kind] = entry["errors"].get(kind, 0) + count
        entry["worst_p99_ms"] = max(entry["worst_p99_ms"], result["latency_us"]["p99"] / 1000)
        entry["worst_max_ms"] = max(entry["worst_max_ms"], result["latency_us"]["max"] / 1000)
    report["stable_load"] = load
    for protocol, entry in load.items():
        if entry["failed"]:
            failures.append(f"{entry['failed']} failed {protocol} requests on the stable services: {entry['errors']}")
        if entry["runs"] == 0:
            failures.append(f"no {protocol} load ran")

    # The gateway's own figures.
    scraped = metrics(read(os.path.join(work, "metrics.txt")))
    answers = {}
    for (name, labels), value in scraped.items():
        label = dict(labels)
        if name == "lambda_gateway_requests_total" and label.get("service") in stable:
            key = f"{label['service']} {label['status']} {label['outcome']}"
            answers[key] = int(value)
    report["gateway_answers_stable"] = answers
    bad = {k: v for k, v in answers.items() if not k.split()[1].startswith("2")}
    if bad:
        failures.append(f"the gateway answered stable services with non-2xx: {bad}")
    if not scraped:
        failures.append("no /metrics at the end")
    by_reason = lambda metric: {dict(l).get("reason"): int(v) for (n, l), v in scraped.items() if n == metric and v}
    report["connections_closed_by_reason"] = by_reason("lambda_gateway_connections_closed_total")
    report["handshake_failures_by_reason"] = by_reason("lambda_gateway_tls_handshake_failures_total")
    report["held_answer_bytes_end"] = scraped.get(("lambda_gateway_held_answer_bytes", ()))
    report["requests_by_status"] = {}
    for (name, labels), value in scraped.items():
        if name == "lambda_gateway_requests_total":
            status = dict(labels).get("status")
            report["requests_by_status"][status] = report["requests_by_status"].get(status, 0) + int(value)

    # RSS and fds.
    series = samples(os.path.join(work, "samples.txt"))
    after = samples(os.path.join(work, "after.txt"))
    report["samples"] = series
    report["after_load"] = after[0] if after else None
    if series:
        # The rule: RSS peaks follow the 2 MiB answers held at the moment of a sample, so the
        # peak of the second minute is compared with the peak of the last one (W = min(60 s,
        # DURATION/4): [W, 2W] against [DURATION - W, DURATION]).
        window = min(60, args.duration / 4)
        early = [s["rss_kb"] for s in series if window <= s["t"] <= 2 * window] or [series[0]["rss_kb"]]
        late = [s["rss_kb"] for s in series if s["t"] >= args.duration - window] or [series[-1]["rss_kb"]]
        growth = (max(late) - max(early)) / max(early) * 100
        rss = [s["rss_kb"] for s in series]
        fds = [s["fds"] for s in series]
        report["rss_kb"] = {"first": rss[0], "min": min(rss), "max": max(rss), "last": rss[-1], "window_s": window,
                            "early_peak": max(early), "late_peak": max(late), "growth_pct": round(growth, 1)}
        report["fds"] = {"first": fds[0], "min": min(fds), "max": max(fds), "last": fds[-1]}
        if growth > 20:
            failures.append(f"RSS peak grew {growth:.1f}% from t={window:.0f}-{2 * window:.0f}s to the last {window:.0f}s (rule: at most 20%)")
        if series[-1]["t"] < args.duration - 10:
            failures.append(f"RSS samples stop at t={series[-1]['t']}s")
    else:
        failures.append("no RSS samples")

    # Rotations and churn.
    applied = [(line.rsplit(" ", 1)[0], float(line.rsplit(" ", 1)[1])) for line in read(os.path.join(work, "applied.txt")).splitlines() if line.strip()]
    report["rotations"] = {"roots": sum(1 for w, _ in applied if w.startswith("roots")), "prunes": sum(1 for w, _ in applied if w.startswith("old root")),
                           "leaves": sum(1 for w, _ in applied if w.startswith("leaf")), "max_apply_s": max([s for _, s in applied], default=None)}
    for problem in read(os.path.join(work, "problems.txt")).splitlines():
        if problem.strip():
            failures.append(problem)
    report["churn"] = json_line(os.path.join(work, "churn.json"))

    # Slow and abusive clients.
    slow = [line.split() for line in read(os.path.join(work, "slow.txt")).splitlines() if line.strip()]
    slow_ok = [s for s in slow if s[1] == "200" and float(s[2]) == args.bulk_bytes]
    report["slow_readers"] = {"attempts": len(slow), "ok": len(slow_ok),
                              "by_version": {v: sum(1 for s in slow_ok if s[0] == v) for v in sorted({s[0] for s in slow})},
                              "max_seconds": max([float(s[3]) for s in slow], default=0),
                              "failures": [" ".join(s) for s in slow if s not in slow_ok][:5]}
    if len(slow_ok) != len(slow) or not slow:
        failures.append(f"slow readers: {len(slow_ok)} of {len(slow)} got the whole answer; errors: {read(os.path.join(work, 'slow-errors.txt'))[-300:]!r}")
    for name in ["stall", "h2-noread", "refused"]:
        result = json_line(os.path.join(work, f"{name}.json"))
        report[name] = result
        if result is None:
            failures.append(f"{name} client gave no result: {read(os.path.join(work, name + '.err'))[-300:]!r}")
        elif result["ok"] != result["attempts"] or result["attempts"] == 0:
            failures.append(f"{name}: {result['ok']} of {result['attempts']} as expected")

    # The gateway process.
    log = read(os.path.join(work, "gateway.log")).splitlines()
    levels = {}
    for line in log:
        match = re.match(r"^\S+ (warning|error|critical) ", line)
        if match:
            levels[match.group(1)] = levels.get(match.group(1), 0) + 1
    invoke_failures = {}
    for line in log:
        if "lambda invocation failed" in line:
            match = re.search(r"error=(.*?) service=(\S+)", line)
            key = f"{match.group(2)}: {match.group(1)[:160]}" if match else line[:200]
            invoke_failures[key] = invoke_failures.get(key, 0) + 1
    report["lambda_invocation_failed_log"] = invoke_failures
    report["gateway_log"] = {"lines": len(log), "by_level": levels,
                             "samples": [l[:300] for l in log if re.match(r"^\S+ (warning|error|critical) ", l)][:5]}
    report["gateway_exit_on_sigterm"] = args.gateway_exit
    if args.gateway_exit != "0":
        failures.append(f"the gateway's exit on SIGTERM: {args.gateway_exit}")
    if not report["after_load"]:
        failures.append("no sample after the load")
    elif report["after_load"]["connections_open"] != 0:
        failures.append(f"{report['after_load']['connections_open']} client connections still open after every client stopped")
    report["failures"] = failures
    report["pass"] = not failures

    with open(args.out, "w") as file:
        json.dump(report, file, indent=1, sort_keys=True)
        file.write("\n")

    mb = lambda kb: f"{kb / 1024:.1f}"
    print(f"== soak report: {args.duration:.0f} s, {args.configuration} build, {args.date}")
    for protocol, name in [("h1", "HTTP/1.1"), ("h2", "HTTP/2")]:
        e = load[protocol]
        print(f"   stable services over {name}: {e['requests']} requests, {e['failed']} failed {e['errors'] or ''} "
              f"({e['runs']} mesh-load runs; worst p99 {e['worst_p99_ms']:.1f} ms, worst max {e['worst_max_ms']:.1f} ms)")
    print(f"   gateway's answers to them: {answers}")
    if series:
        r, f = report["rss_kb"], report["fds"]
        w = r["window_s"]
        print(f"   RSS MB: first {mb(r['first'])}, min {mb(r['min'])}, max {mb(r['max'])}, last {mb(r['last'])}; "
              f"peak t={w:.0f}-{2 * w:.0f}s {mb(r['early_peak'])} -> last {w:.0f}s {mb(r['late_peak'])} ({r['growth_pct']:+.1f}%, rule <= +20%)")
        print(f"   open fds: first {f['first']}, min {f['min']}, max {f['max']}, last {f['last']}")
        print("   series t:RSS MB/fds " + " ".join(f"{s['t']}:{mb(s['rss_kb'])}/{s['fds']}" for s in series))
    if after:
        a = after[0]
        print(f"   after the load: RSS {mb(a['rss_kb'])} MB, {a['fds']} fds, {a['connections_open']:.0f} connections open, held answer bytes {a['held_answer_bytes']:.0f}")
    ro = report["rotations"]
    print(f"   rotations: {ro['roots']} roots (+{ro['prunes']} prunes), {ro['leaves']} leaves of orders; slowest to reach the gateway {ro['max_apply_s']} s")
    print(f"   churn: {report['churn']}")
    s = report["slow_readers"]
    print(f"   slow readers (2 MiB at 256 KiB/s): {s['ok']} of {s['attempts']} whole {s['by_version']}, longest {s['max_seconds']:.1f} s")
    st = report["stall"] or {}
    for variant, v in (st.get("by_variant") or {}).items():
        print(f"   stalled head ({variant}): {v['closed']} of {v['attempts']} closed, {v['ok']} within {args.timeout:.0f}+2 s (max {v['max_seconds']} s); saw {v['answers']}")
    h2 = report["h2-noread"] or {}
    if h2:
        variants = {}
        for r in h2.get("results", []):
            variants.setdefault(r["variant"], r)
        print(f"   HTTP/2 not reading ({h2['streams_each']} streams for 2 MiB each): {h2['ok']} of {h2['attempts']} closed by --send-timeout, "
              f"latest {h2['max_closed_after']} s after the requests; e.g. " + "; ".join(
                  f"{k}: closed after {v.get('closed_after')} s, {v.get('bytes_received')} bytes, frames {v.get('frames')}" for k, v in variants.items()))
    rf = report["refused"] or {}
    if rf:
        print(f"   refused handshakes: {rf['ok']} of {rf['attempts']} refused: {rf['outcomes']}")
    print(f"   gateway closed connections: {report['connections_closed_by_reason']}; handshake failures: {report['handshake_failures_by_reason']}; "
          f"held answer bytes at the end {report['held_answer_bytes_end']}")
    print(f"   answers by status (all services): {report['requests_by_status']}")
    print(f"   gateway log: {len(log)} lines, {levels}; exit on SIGTERM: {args.gateway_exit}")
    for key, count in invoke_failures.items():
        print(f"   'lambda invocation failed' x{count}: {key}")
    print(f"   -> {args.out}")
    if failures:
        print("== FAIL")
        for failure in failures:
            print(f"   - {failure}")
        sys.exit(1)
    print("== PASS")


if __name__ == "__main__":
    main()
