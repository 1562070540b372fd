#!/usr/bin/env python3
"""Checks conf/grafana/lambda-gateway.json against the gateway's /metrics contract (issue 22).

Every metric name that a panel's `expr` or a template variable's query names must be one the
gateway exposes (the list below, the contract's table; a histogram as its _bucket, _sum and _count
series), with only the labels that metric has (plus job and instance, which Prometheus adds, and le
on _bucket). Every panel and query uses the `${datasource}` variable; the `service` and `instance`
variables are there, multi-valued with All; and the metrics the dashboard is meant to show are all
on it.

  --rules FILE        check the exprs of a Prometheus rules file the same way (recorded names of that
                      file and `up` allowed too)
  --promql-out FILE   write the dashboard's queries, Grafana variables replaced by plain values, as a
                      rules file, for `promtool check rules` to check their PromQL syntax

Run by scripts/check-prometheus-conf.sh. Standard library only.
"""
import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "conf" / "grafana" / "lambda-gateway.json"

# The /metrics contract: name -> (type, labels). Keep in step with the gateway's metrics (README,
# "Metrics").
CONTRACT = {
    "lambda_gateway_requests_total": ("counter", {"service", "status", "outcome"}),
    "lambda_gateway_request_duration_seconds": ("histogram", {"service"}),
    "lambda_gateway_lambda_call_duration_seconds": ("histogram", {"service"}),
    "lambda_gateway_request_body_bytes_total": ("counter", {"service"}),
    "lambda_gateway_response_body_bytes_total": ("counter", {"service"}),
    "lambda_gateway_lambda_errors_total": ("counter", {"service", "error_type"}),
    "lambda_gateway_requests_in_flight": ("gauge", set()),
    "lambda_gateway_connections_open": ("gauge", set()),
    "lambda_gateway_connections_closed_total": ("counter", {"reason"}),
    "lambda_gateway_tls_handshake_failures_total": ("counter", {"reason"}),
    "lambda_gateway_held_answer_bytes": ("gauge", set()),
    "lambda_gateway_upstream_connections_open": ("gauge", set()),
    "lambda_gateway_upstream_connections_idle": ("gauge", set()),
    "lambda_gateway_upstream_tls_handshakes_total": ("counter", {"result"}),
    "lambda_gateway_credential_refreshes_total": ("counter", set()),
    "lambda_gateway_credential_refresh_failures_total": ("counter", set()),
    "lambda_gateway_snapshot_version": ("gauge", set()),
    "lambda_gateway_snapshot_age_seconds": ("gauge", set()),
    "lambda_gateway_services_served": ("gauge", set()),
    "lambda_gateway_services_not_served": ("gauge", {"reason"}),
    "lambda_gateway_consul_watch_errors_total": ("counter", {"watch"}),
    "lambda_gateway_consul_watch_staleness_seconds": ("gauge", {"watch"}),
    "lambda_gateway_leaf_certificate_expiry_seconds": ("gauge", {"service"}),
    "lambda_gateway_ca_root_expiry_seconds": ("gauge", {"root"}),
    "lambda_gateway_access_log_lines_total": ("counter", set()),
    "lambda_gateway_access_log_lines_dropped_total": ("counter", {"reason"}),
    "lambda_gateway_build_info": ("gauge", {"version"}),
    "process_cpu_seconds_total": ("counter", set()),
    "process_resident_memory_bytes": ("gauge", set()),
    "process_virtual_memory_bytes": ("gauge", set()),
    "process_open_fds": ("gauge", set()),
    "process_max_fds": ("gauge", set()),
    "process_start_time_seconds": ("gauge", set()),
}

# What the dashboard must show (issue 22): each of these series is named by some panel.
REQUIRED_ON_DASHBOARD = [
    "lambda_gateway_requests_total",
    "lambda_gateway_request_duration_seconds_bucket",
    "lambda_gateway_lambda_call_duration_seconds_bucket",
    "lambda_gateway_lambda_errors_total",
    "lambda_gateway_requests_in_flight",
    "lambda_gateway_connections_open",
    "lambda_gateway_tls_handshake_failures_total",
    "lambda_gateway_connections_closed_total",
    "lambda_gateway_snapshot_age_seconds",
    "lambda_gateway_consul_watch_staleness_seconds",
    "lambda_gateway_leaf_certificate_expiry_seconds",
    "lambda_gateway_ca_root_expiry_seconds",
    "lambda_gateway_upstream_connections_open",
    "lambda_gateway_upstream_connections_idle",
    "lambda_gateway_credential_refresh_failures_total",
    "lambda_gateway_access_log_lines_total",
    "lambda_gateway_access_log_lines_dropped_total",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
]

TARGET_LABELS = {"job", "instance"}  # added by Prometheus to every scraped series
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan", "atan2"}
IDENT = r"[A-Za-z_:][A-Za-z0-9_:]*"
GRAFANA_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h",
                     "service": ".*", "instance": ".*"}


def series_labels():
    """Every series name the gateway exposes -> the labels it may carry."""
    names = {}
    for name, (kind, labels) in CONTRACT.items():
        labels = labels | TARGET_LABELS
        if kind == "histogram":
            names[name + "_bucket"] = labels | {"le"}
            names[name + "_sum"] = labels
            names[name + "_count"] = labels
        else:
            names[name] = labels
    return names


def strip_strings(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def selectors(expr):
    """(metric name, label names) of each `name{...}` selector, and the names used bare."""
    s = strip_strings(expr)
    s = re.sub(r"\$\{?\w+\}?", "", s)
    found = []
    for m in re.finditer(rf"(?<![\w.:])({IDENT})\s*\{{([^}}]*)\}}", s):
        labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", m.group(2)))
        found.append((m.group(1), labels))
    return found


def metric_names(expr):
    """The metric names an expression reads (functions, keywords, labels and durations left out)."""
    s = strip_strings(expr)
    s = re.sub(r"\$\{?\w+\}?", "", s)             # Grafana variables
    s = re.sub(r"\{[^}]*\}", "", s)               # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)              # ranges and subqueries
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(rf"(?<![\w.:]){IDENT}", s):
        token = m.group(0)
        if token.lower() in KEYWORDS or s[m.end():].lstrip().startswith("("):
            continue
        names.add(token)
    return names


def variable_query_expr(query):
    """The PromQL inside a Grafana Prometheus variable query such as label_values(metric, label)."""
    text = query.get("query", "") if isinstance(query, dict) else str(query)
    m = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", text)
    if m:
        return m.group(1)
    m = re.fullmatch(r"\s*label_values\(\s*\w+\s*\)\s*", text)
    if m:
        return ""
    m = re.fullmatch(r"\s*query_result\((.*)\)\s*", text)
    return m.group(1) if m else text


def all_panels(panels):
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def is_datasource_variable(ds):
    return isinstance(ds, dict) and ds.get("uid") == "${datasource}" or ds == "${datasource}"


def check_exprs(exprs, known, errors, allowed_extra=()):
    """exprs: (where, expr) pairs. Returns every series name read."""
    used = set()
    for where, expr in exprs:
        names = metric_names(expr)
        if not names and "time()" not in expr:
            errors.append(f"{where}: no metric found in {expr!r}")
        for name in sorted(names):
            used.add(name)
            if name not in known and name not in allowed_extra:
                errors.append(f"{where}: {name} is not a metric of the /metrics contract")
        for name, labels in selectors(expr):
            if name in known:
                unknown = labels - known[name]
                if unknown:
                    errors.append(f"{where}: {name} has no label {', '.join(sorted(unknown))}")
    return used


def check_dashboard(path, errors):
    dashboard = json.loads(Path(path).read_text())
    known = series_labels()
    if dashboard.get("schemaVersion", 0) < 38:
        errors.append(f"schemaVersion {dashboard.get('schemaVersion')} < 38")
    if "__inputs" in dashboard:
        errors.append("__inputs present: the dashboard uses the datasource variable instead")

    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errors.append("no `datasource` variable of type datasource with query prometheus")
    for name in ("service", "instance"):
        v = variables.get(name)
        if not v:
            errors.append(f"no `{name}` variable")
            continue
        if not (v.get("multi") and v.get("includeAll")):
            errors.append(f"variable {name}: must be multi-valued and include All")
        if not is_datasource_variable(v.get("datasource")):
            errors.append(f"variable {name}: datasource is not ${{datasource}}")
    service_query = variable_query_expr(variables.get("service", {}).get("query", ""))
    if re.sub(r"\s", "", service_query) != "lambda_gateway_requests_total":
        errors.append("variable service: must be label_values(lambda_gateway_requests_total, service)")

    exprs = []
    for name, v in variables.items():
        if v.get("type") == "query":
            exprs.append((f"variable {name}", variable_query_expr(v.get("query", ""))))

    ids = set()
    for panel in all_panels(dashboard.get("panels", [])):
        where = f"panel {panel.get('id')} ({panel.get('title')!r})"
        if panel.get("id") in ids:
            errors.append(f"{where}: duplicate id")
        ids.add(panel.get("id"))
        if not is_datasource_variable(panel.get("datasource")):
            errors.append(f"{where}: datasource is not ${{datasource}}")
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets", [])
        if not targets:
            errors.append(f"{where}: no query")
        for t in targets:
            if not is_datasource_variable(t.get("datasource", panel.get("datasource"))):
                errors.append(f"{where} query {t.get('refId')}: datasource is not ${{datasource}}")
            if not t.get("expr", "").strip():
                errors.append(f"{where} query {t.get('refId')}: empty expr")
                continue
            exprs.append((f"{where} query {t.get('refId')}", t["expr"]))

    used = check_exprs(exprs, known, errors)
    for name in REQUIRED_ON_DASHBOARD:
        if name not in used:
            errors.append(f"no panel shows {name}")
    return dashboard, exprs


def rule_exprs(path):
    """(where, expr) of each rule of a Prometheus rules file, and the names it records. A small
    reader for `expr:` and `record:` keys, inline or as a `|` block, so no YAML library is needed."""
    lines = Path(path).read_text().splitlines()
    exprs, recorded = [], set()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^(\s*)(?:- )?(record|expr):\s*(.*)$", line)
        i += 1
        if not m:
            continue
        where = f"{Path(path).name} line {i}"
        indent, key, value = len(m.group(1)), m.group(2), m.group(3).strip()
        if value in ("|", "|-", ">", ">-"):
            block = []
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i].strip())
                i += 1
            value = " ".join(block).strip()
        elif len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key == "record":
            recorded.add(value)
        else:
            exprs.append((where, value))
    return exprs, recorded


def write_promql_rules(exprs, out):
    """The dashboard's queries as recording rules, Grafana variables replaced, for promtool."""
    lines = ["# Generated by scripts/check_dashboard.py --promql-out: the dashboard's queries.",
             "groups:", "  - name: dashboard-queries", "    rules:"]
    n = 0
    for where, expr in exprs:
        if not expr.strip() or where.startswith("variable"):
            continue
        plain = re.sub(r"\$\{?(\w+)\}?", lambda m: GRAFANA_VARIABLES.get(m.group(1), m.group(0)), expr)
        if "$" in plain:
            raise SystemExit(f"{where}: a Grafana variable left in {plain!r}")
        n += 1
        lines.append(f"      - record: dashboard:query_{n}")
        lines.append(f"        expr: {json.dumps(plain)}")
    Path(out).write_text("\n".join(lines) + "\n")
    return n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboard", nargs="?", default=str(DASHBOARD))
    parser.add_argument("--rules", action="append", default=[])
    parser.add_argument("--promql-out")
    args = parser.parse_args()

    errors = []
    dashboard, exprs = check_dashboard(args.dashboard, errors)
    panels = [p for p in all_panels(dashboard.get("panels", [])) if p.get("type") != "row"]
    print(f"{args.dashboard}: {len(panels)} panels, {len(exprs)} queries")

    known = series_labels()
    for rules in args.rules:
        rexprs, recorded = rule_exprs(rules)
        if not rexprs:
            errors.append(f"{rules}: no expr found")
        check_exprs(rexprs, known, errors, allowed_extra=recorded | {"up"})
        print(f"{rules}: {len(rexprs)} rule exprs, {len(recorded)} recorded names")

    if args.promql_out:
        n = write_promql_rules(exprs, args.promql_out)
        print(f"{args.promql_out}: {n} dashboard queries written for promtool")

    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} error(s)", file=sys.stderr)
        return 1
    print("OK: every metric named is in the /metrics contract")
    return 0


if __name__ == "__main__":
    sys.exit(main())
