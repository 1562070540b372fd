#!/usr/bin/env python3
"""Turns compare.sh's runs (one mesh-load JSON line each) into the table, the targets and a JSON file.

Throughput and handshakes: the best round of each contestant. When the load client's core is the
limit (the client straight to the upstream is no faster), the CPU each contestant spends per request
is the fairer comparison, so the table shows both. Latency: the median over the rounds of
each percentile, minus the direct path's. CPU per request: the contestant's CPU time during a run
(its warm-up included) over the requests it served in that time.
"""
import argparse
import json
import statistics
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("runs")
    parser.add_argument("out")
    parser.add_argument("--rss", nargs=3, type=int, metavar=("GATEWAY_KB", "NGINX_WORKER_KB", "NGINX_MASTER_KB"))
    parser.add_argument("--services", type=int)
    parser.add_argument("--cores", type=int)
    parser.add_argument("--date")
    parser.add_argument("--configuration")
    parser.add_argument("--settings")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--callgrind", help="compare.sh's callgrind.json, when CALLGRIND was set")
    parser.add_argument("--syscalls", help="compare.sh's syscalls.json, when SYSCALLS was set")
    args = parser.parse_args()

    runs = [json.loads(line) for line in open(args.runs) if line.strip()]
    by_label = {}
    for run in runs:
        by_label.setdefault(run["label"], []).append(run)

    def best(label):
        return max(by_label[label], key=lambda r: r["rps"])

    def median_latency(label, percentile):
        return statistics.median(r["latency_us"][percentile] for r in by_label[label])

    def cpu_us_per_request(label):
        run = best(label)
        served = run["rps"] * (run["duration_s"] + run.get("warmup_s", 0))
        return run["cpu_s"] * 1e6 / served if served else None

    def ratio(a, b):
        return a / b if b else 0.0

    g1, n1, d1 = best("gateway-h1"), best("nginx-h1"), best("direct-h1")
    g2, n2 = best("gateway-h2"), best("nginx-h2")
    ga, na = best("gateway-ab"), best("nginx-ab")
    gh, nh = best("gateway-handshakes"), best("nginx-handshakes")
    added = {
        who: {p: median_latency(f"{who}-latency", p) - median_latency("direct-latency", p) for p in ("p50", "p99")}
        for who in ("gateway", "nginx")
    }
    gateway_kb, nginx_worker_kb, nginx_master_kb = args.rss
    table = {
        "date": args.date,
        "cores": args.cores,
        "configuration": args.configuration,
        "services": args.services,
        "settings": args.settings,
        "throughput_h1_rps": {"gateway": g1["rps"], "nginx": n1["rps"], "direct": d1["rps"], "ratio": ratio(g1["rps"], n1["rps"])},
        "throughput_h2_rps": {"gateway": g2["rps"], "nginx": n2["rps"], "ratio": ratio(g2["rps"], n2["rps"])},
        "throughput_h1_ab_rps": {"gateway": ga["rps"], "nginx": na["rps"], "ratio": ratio(ga["rps"], na["rps"])},
        "cpu_us_per_request_h1_ab": {"gateway": cpu_us_per_request("gateway-ab"), "nginx": cpu_us_per_request("nginx-ab")},
        "cpu_us_per_request_h1": {"gateway": cpu_us_per_request("gateway-h1"), "nginx": cpu_us_per_request("nginx-h1")},
        "cpu_us_per_request_h2": {"gateway": cpu_us_per_request("gateway-h2"), "nginx": cpu_us_per_request("nginx-h2")},
        "latency_rate": by_label["gateway-latency"][0]["target_rate"],
        "added_latency_us": added,
        "handshakes_per_s": {"gateway": gh["rps"], "nginx": nh["rps"], "ratio": ratio(gh["rps"], nh["rps"])},
        "cpu_us_per_handshake": {"gateway": cpu_us_per_request("gateway-handshakes"), "nginx": cpu_us_per_request("nginx-handshakes")},
        "peak_rss_kb": {"gateway": gateway_kb, "nginx_worker": nginx_worker_kb, "nginx_master": nginx_master_kb},
        "errors": {r["label"]: r["errors"] for r in runs if r["error_count"]},
        "runs": runs,
    }
    targets = [
        ("HTTP/1.1 throughput >= 1.0x nginx", table["throughput_h1_rps"]["ratio"] >= 1.0),
        ("HTTP/2 throughput >= 1.0x nginx", table["throughput_h2_rps"]["ratio"] >= 1.0),
        ("HTTP/1.1 throughput with ab -k >= 1.0x nginx", table["throughput_h1_ab_rps"]["ratio"] >= 1.0),
        ("CPU per request (HTTP/1.1) <= nginx's", (table["cpu_us_per_request_h1"]["gateway"] or 0) <= (table["cpu_us_per_request_h1"]["nginx"] or 0)),
        ("added p50 <= 0.3 ms", added["gateway"]["p50"] <= 300),
        ("added p99 <= 2 ms", added["gateway"]["p99"] <= 2000),
        ("handshakes/s >= nginx", table["handshakes_per_s"]["ratio"] >= 1.0),
        (f"RSS <= 64 MB with {args.services} services", gateway_kb <= 64 * 1024),
    ]
    table["targets"] = {name: met for name, met in targets}
    if args.callgrind:
        table["callgrind"] = json.load(open(args.callgrind))
    if args.syscalls:
        table["syscalls"] = json.load(open(args.syscalls))
    with open(args.out, "w") as f:
        json.dump(table, f, indent=2)

    def f0(x):
        return "n/a" if x is None else f"{x:.0f}"

    def f2(x):
        return "n/a" if x is None else f"{x:.2f}"

    def cpu(key, who):
        return f"{table[key][who]:.1f}" if table[key][who] is not None else "n/a"

    print(f"""
{args.date}, {args.cores} cores; gateway and nginx each one worker on core 0, load client and upstream on core 1; {args.services} linked services; {args.configuration} build; {args.settings}

| | lambda-gateway | nginx | gateway / nginx |
|---|---|---|---|
| throughput HTTP/1.1, 1 KB, req/s (client straight to the upstream: {f0(d1['rps'])}) | {f0(g1['rps'])} | {f0(n1['rps'])} | {f2(table['throughput_h1_rps']['ratio'])} |
| throughput HTTP/2, 1 KB, req/s | {f0(g2['rps'])} | {f0(n2['rps'])} | {f2(table['throughput_h2_rps']['ratio'])} |
| throughput HTTP/1.1 with `ab -k -c {ga.get('connections', '?')}`, 1 KB, req/s | {f0(ga['rps'])} | {f0(na['rps'])} | {f2(table['throughput_h1_ab_rps']['ratio'])} |
| CPU per request with ab, µs | {cpu('cpu_us_per_request_h1_ab', 'gateway')} | {cpu('cpu_us_per_request_h1_ab', 'nginx')} | |
| CPU per request HTTP/1.1, µs | {cpu('cpu_us_per_request_h1', 'gateway')} | {cpu('cpu_us_per_request_h1', 'nginx')} | |
| CPU per request HTTP/2, µs | {cpu('cpu_us_per_request_h2', 'gateway')} | {cpu('cpu_us_per_request_h2', 'nginx')} | |
| added latency p50 at {f0(table['latency_rate'])} req/s, µs | {f0(added['gateway']['p50'])} | {f0(added['nginx']['p50'])} | |
| added latency p99 at {f0(table['latency_rate'])} req/s, µs | {f0(added['gateway']['p99'])} | {f0(added['nginx']['p99'])} | |
| full mTLS handshakes/s | {f0(gh['rps'])} | {f0(nh['rps'])} | {f2(table['handshakes_per_s']['ratio'])} |
| CPU per handshake (and its one request), µs | {cpu('cpu_us_per_handshake', 'gateway')} | {cpu('cpu_us_per_handshake', 'nginx')} | |
| peak RSS, MB | {gateway_kb / 1024:.1f} | {nginx_worker_kb / 1024:.1f} worker + {nginx_master_kb / 1024:.1f} master | |
""")
    for name, met in targets:
        print(f"  target {'met   ' if met else 'MISSED'}  {name}")
    if table["errors"]:
        print("errors:", table["errors"])
    print("written:", args.out)

    if args.smoke:
        # The smoke run checks that every piece works, never how fast: every run served requests
        # and none had errors.
        broken = [r["label"] for r in runs if r["requests"] == 0 or r["error_count"]]
        if broken:
            print("smoke run FAILED:", ", ".join(sorted(set(broken))), file=sys.stderr)
            sys.exit(1)
        print("smoke run: every piece works")


if __name__ == "__main__":
    main()
