#!/usr/bin/env bash
# Scale benchmark (not a CI test; CI runs 1,000 services in Tests/GatewayCoreTests/ScaleTests.swift):
# lambda-gateway `run` against the Consul API test server (consul-test-server), which limits each
# client address to 200 connections and answers Consul's 429 over it, as a Consul agent does by
# default (docs/DECISIONS.md D35). Everything on 127.0.0.1. For each count in COUNTS (1000 5000 10000),
# a fresh server with that many linked Lambda services (bulk-created in one write), a fresh gateway,
# and these figures:
#   start→served   seconds from the gateway's start until lambda_gateway_services_served = N
#   peak conns     the most connections the server saw from 127.0.0.1 at once (the gateway, and
#                  this script's one control request at a time)
#   refused        connections the server refused with 429 (must be 0)
#   steady req/s   agent requests per second over STEADY seconds once everything is served
#   steady conns   connections open from 127.0.0.1 at the end of that window
#   RSS            the gateway's VmRSS at the end of that window (MB)
#   +1 link        seconds from linking one more service until it is served
#   roots→all      seconds from a CA roots rotation (the new root active, every leaf re-signed by
#                  the server) until the gateway has read every service's new leaf
#   RSS +TLS       with HANDSHAKES=K: the gateway's VmRSS after mesh handshakes (curl, 4 at a time)
#                  to K different services, each of which builds that service's TLS context
# A table goes to stdout and a JSON line per count to Benchmarks/results/scale-<time>.json.
#
#   Benchmarks/scale.sh                       # 1,000, 5,000 and 10,000 services, release build
#   COUNTS="1000" STEADY=30 Benchmarks/scale.sh
# Knobs: COUNTS, STEADY (60), HANDSHAKES (0), GATEWAY_ENV (extra VAR=value for the gateway), SWIFT (the swift command, e.g. a wrapper that serializes builds),
# LIMIT (the server's per-client limit, 200), KEEP=1 (keep the work directory).
# Every process it starts is stopped by PID on any exit.
set -euo pipefail
cd "$(dirname "$0")"
bench=$(pwd)
root=$(cd .. && pwd)
COUNTS=${COUNTS:-"1000 5000 10000"}
STEADY=${STEADY:-60}
LIMIT=${LIMIT:-200}
HANDSHAKES=${HANDSHAKES:-0}
SWIFT=${SWIFT:-swift}

# A release build is the one the README installs: the Swift runtime linked in (--static-swift-stdlib).
echo "== building (release, --static-swift-stdlib)"
for product in lambda-gateway consul-test-server; do
    (cd "$root" && $SWIFT build -c release --static-swift-stdlib --product "$product" >/dev/null)
done
bin_dir=$(cd "$root" && $SWIFT build -c release --static-swift-stdlib --show-bin-path)
work=$(mktemp -d /tmp/lambda-gateway-scale.XXXXXX)
mkdir -p "$bench/results"
results="$bench/results/scale-$(date -u +%Y%m%dT%H%M%SZ).json"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    [[ -n "${KEEP:-}" ]] && echo "work directory: $work" || rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$2"; }
stat_of() { curl -fsS "$consul/_control/stats" | python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
served() {
    curl -fsS "http://127.0.0.1:$admin_port/metrics" 2>/dev/null | awk '$1 == "lambda_gateway_services_served" { print int($2) }' || true
}
wait_until() { # wait_until LIMIT_SECONDS COMMAND...: polls every 0.2 s until COMMAND succeeds
    local deadline=$(( $(date +%s) + $1 )); shift
    until "$@"; do
        (( $(date +%s) < deadline )) || return 1
        sleep 0.2
    done
}
served_is() { [[ "$(served)" == "$1" ]]; }
rotation_reached() { [[ "$(stat_of leafReadsSinceRotation)" -ge "$1" ]]; }

printf '%-8s %14s %11s %8s %13s %13s %8s %8s %10s\n' services "start→served" "peak conns" refused "steady req/s" "steady conns" "RSS MB" "+1 link" "roots→all"
for count in $COUNTS; do
    run="$work/$count"
    mkdir -p "$run"
    "$bin_dir/consul-test-server" --port-file "$run/consul.port" --max-conns-per-client "$LIMIT" > "$run/consul.log" 2>&1 &
    consul_pid=$!
    pids+=("$consul_pid")
    wait_until 30 test -s "$run/consul.port" || { echo "consul-test-server did not start"; cat "$run/consul.log"; exit 1; }
    consul="http://127.0.0.1:$(cat "$run/consul.port")"
    curl -fsS -X POST "$consul/_control/add-lambda-services?count=$count" > /dev/null

    admin_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    listen_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    started=$(now)
    AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret AWS_EC2_METADATA_DISABLED=true HOME=/nonexistent env ${GATEWAY_ENV:-} \
        "$bin_dir/lambda-gateway" run --gateway-name lambda-gateway --listen "127.0.0.1:$listen_port" --admin "127.0.0.1:$admin_port" \
        --consul-addr "$consul" --register none --lambda-endpoint https://127.0.0.1:9 --log-level warning > "$run/gateway.log" 2>&1 &
    gateway_pid=$!
    pids+=("$gateway_pid")
    wait_until 600 served_is "$count" || { echo "not all served after 600 s: $(served) of $count"; tail -5 "$run/gateway.log"; exit 1; }
    all_served=$(now)

    requests_before=$(stat_of requests)
    sleep "$STEADY"
    requests_after=$(stat_of requests)
    steady_rate=$(python3 -c "print(f'{($requests_after - $requests_before - 1) / $STEADY:.1f}')")
    steady_conns=$(stat_of openConnections)
    rss_mb=$(awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$gateway_pid/status")

    linked=$(now)
    curl -fsS -X POST "$consul/_control/add-lambda-services?count=1&prefix=extra-" > /dev/null
    wait_until 60 served_is $((count + 1)) || { echo "one more link not served in 60 s"; exit 1; }
    one_more=$(elapsed "$linked" "$(now)")

    curl -fsS -X POST "$consul/_control/rotate-roots" > /dev/null
    rotated=$(now)
    wait_until 300 rotation_reached $((count + 1)) || { echo "roots rotation did not reach every service in 300 s: $(stat_of leafReadsSinceRotation)"; exit 1; }
    roots_all=$(elapsed "$rotated" "$(now)")
    rss_tls=""
    if (( HANDSHAKES > 0 )); then
        # A mesh client leaf for `web` from the server's CA (its leaf endpoint hands out the key too).
        curl -fsS "$consul/v1/agent/connect/ca/leaf/web" | python3 -c "
import json, sys; leaf = json.load(sys.stdin)
open('$run/web.pem', 'w').write(leaf['CertPEM']); open('$run/web.key', 'w').write(leaf['PrivateKeyPEM'])"
        trust_domain=$(curl -fsS "$consul/v1/agent/connect/ca/roots" | python3 -c "import json, sys; print(json.load(sys.stdin)['TrustDomain'])")
        seq 0 $((HANDSHAKES - 1)) | xargs -P 4 -I{} curl -sk -o /dev/null --cert "$run/web.pem" --key "$run/web.key" \
            --resolve "fn-{}.default.dc1.internal.$trust_domain:$listen_port:127.0.0.1" "https://fn-{}.default.dc1.internal.$trust_domain:$listen_port/" || true
        rss_tls=$(awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$gateway_pid/status")
        echo "RSS after handshakes to $HANDSHAKES services: $rss_tls MB (before: $rss_mb MB)"
    fi
    peak=$(stat_of peakConnections)
    refused=$(stat_of refusedConnections)
    start_served=$(elapsed "$started" "$all_served")

    printf '%-8s %14s %11s %8s %13s %13s %8s %8s %10s\n' "$count" "${start_served} s" "$peak" "$refused" "$steady_rate" "$steady_conns" "$rss_mb" "${one_more} s" "${roots_all} s"
    printf '{"services":%s,"startToServedSeconds":%s,"peakConnections":%s,"refusedConnections":%s,"steadyRequestsPerSecond":%s,"steadyConnections":%s,"rssMB":%s,"oneMoreLinkSeconds":%s,"rootsToAllSeconds":%s,"handshakes":%s,"rssAfterHandshakesMB":%s}\n' \
        "$count" "$start_served" "$peak" "$refused" "$steady_rate" "$steady_conns" "$rss_mb" "$one_more" "$roots_all" "$HANDSHAKES" "${rss_tls:-null}" >> "$results"

    kill "$gateway_pid" "$consul_pid"
    wait "$gateway_pid" "$consul_pid" 2>/dev/null || true
done
echo "results: $results"
