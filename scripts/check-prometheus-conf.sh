#!/usr/bin/env bash
# Checks the monitoring files shipped in conf/ (issue 22): the Prometheus rules (syntax, and their unit
# tests: every alert firing, the cases that must not fire), the example Prometheus configuration, and
# the Grafana dashboard (valid JSON, every metric and label it names is in the gateway's /metrics
# contract, its PromQL parses). Needs promtool (scripts/install-test-tools.sh installs it) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v promtool >/dev/null 2>&1; then
    echo "error: promtool not found; scripts/install-test-tools.sh installs it (Debian package prometheus)" >&2
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== promtool check rules"
promtool check rules conf/prometheus/lambda-gateway-rules.yml
echo "== promtool test rules"
promtool test rules conf/prometheus/lambda-gateway-rules.test.yml
echo "== promtool check config (its rule_files are relative to the config file)"
promtool check config conf/prometheus/prometheus.example.yml
echo "== the Grafana dashboard and the rules against the /metrics contract"
python3 -m json.tool conf/grafana/lambda-gateway.json >/dev/null
python3 scripts/check_dashboard.py conf/grafana/lambda-gateway.json \
    --rules conf/prometheus/lambda-gateway-rules.yml --promql-out "$tmp/dashboard-queries.yml"
echo "== the dashboard's PromQL (Grafana variables replaced)"
promtool check rules "$tmp/dashboard-queries.yml"
echo "== conf/prometheus and conf/grafana: OK"
