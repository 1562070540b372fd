#!/usr/bin/env bash
# A full registrator sync of N tagged functions against moto's server (Lambda) and the project's
# Consul API test server, with the default MAX_CONCURRENCY (8) and with 1 (the reference's
# sequential shape), then a second sync with nothing changed. Release build; loopback only.
#
#   Benchmarks/registrator.sh                 # 1,000 functions
#   COUNT=300 Benchmarks/registrator.sh       # CI's smoke size (SMOKE=1 does the same)
# Knobs: COUNT, CONCURRENCY ("8 1"), SWIFT (the swift command), CONFIG (release|debug), KEEP=1.
# Every process it starts is stopped by PID on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
COUNT=${COUNT:-1000}
[ -n "${SMOKE:-}" ] && COUNT=300
CONCURRENCY=${CONCURRENCY:-"8 1"}
CONFIG=${CONFIG:-release}
SWIFT=${SWIFT:-swift}
[ "$SWIFT" = swift ] && [ -x /work/swift-locked ] && SWIFT=/work/swift-locked

# A release build is the one the README installs: the Swift runtime linked in (--static-swift-stdlib).
build=(-c "$CONFIG"); [[ $CONFIG == release ]] && build+=(--static-swift-stdlib)
echo "== building (${build[*]})"
for product in lambda-gateway consul-test-server; do
    $SWIFT build "${build[@]}" --product "$product" > /tmp/registrator-bench-build.log 2>&1 || { tail -30 /tmp/registrator-bench-build.log; exit 1; }
done
bin_dir=$($SWIFT build "${build[@]}" --show-bin-path)
work=$(mktemp -d /tmp/lambda-registrator-bench.XXXXXX)
mkdir -p Benchmarks/results
results="Benchmarks/results/registrator-$(date -u +%Y%m%dT%H%M%SZ)${SMOKE:+-smoke}.json"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    [[ -n "${KEEP:-}" ]] && echo "work directory: $work" || rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

moto_port=$(free_port)
python3 scripts/moto_server_aws.py -H 127.0.0.1 -p "$moto_port" > "$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$moto_port/moto-api/" >/dev/null 2>&1 && break; sleep 0.2; done
moto="http://127.0.0.1:$moto_port"
python3 scripts/moto_fixture.py "$moto" > "$work/fixture.json"
key() { python3 -c "import json, sys; print(json.load(open('$work/fixture.json'))$1)"; }

echo "== creating $COUNT tagged functions in moto"
started=$(now)
python3 -c "
import json
print(json.dumps([{'op': 'create', 'name': f'fn-{i:05d}', 'tags': {'serverless.consul.hashicorp.com/v1alpha1/lambda/enabled': 'true'}} for i in range($COUNT)]))
" | MOTO_ADMIN_ACCESS_KEY_ID=$(key "['admin']['access_key_id']") MOTO_ADMIN_SECRET_ACCESS_KEY=$(key "['admin']['secret_access_key']") \
    MOTO_ROLE_ARN=$(key "['role_arn']") python3 scripts/moto_functions.py "$moto" > /dev/null
echo "   $(python3 -c "print(f'{$(now) - $started:.1f}')") s"

printf '%-12s %10s %10s %12s %12s %14s\n' concurrency "sync s" upserted "AWS calls" "Consul calls" "again s (0 w)"
for concurrency in $CONCURRENCY; do
    consul_port_file="$work/consul-$concurrency.port"
    "$bin_dir/consul-test-server" --port-file "$consul_port_file" > "$work/consul-$concurrency.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$consul_port_file" ] && break; sleep 0.1; done
    consul="http://127.0.0.1:$(cat "$consul_port_file")"
    run() {
        env -i PATH="$PATH" HOME=/nonexistent AWS_EC2_METADATA_DISABLED=true AWS_REGION=us-east-1 AWS_ENDPOINT_URL="$moto" \
            AWS_ACCESS_KEY_ID=$(key "['registrator']['access_key_id']") AWS_SECRET_ACCESS_KEY=$(key "['registrator']['secret_access_key']") \
            CONSUL_HTTP_ADDR="$consul" MAX_CONCURRENCY="$concurrency" LOG_LEVEL=warn \
            "$bin_dir/lambda-gateway" registrator sync --json 2> "$work/sync.err"
    }
    started=$(now)
    run > "$work/first.json"
    first=$(python3 -c "print(f'{$(now) - $started:.2f}')")
    summary=$(grep '^registrator:' "$work/sync.err")
    upserted=$(python3 -c "import json; print(json.load(open('$work/first.json'))['upserted'])")
    aws_calls=$(sed -E 's/.*\(([0-9]+) AWS calls, ([0-9]+) Consul calls\).*/\1/' <<< "$summary")
    consul_calls=$(sed -E 's/.*\(([0-9]+) AWS calls, ([0-9]+) Consul calls\).*/\2/' <<< "$summary")
    started=$(now)
    run > "$work/second.json"
    second=$(python3 -c "print(f'{$(now) - $started:.2f}')")
    again_upserted=$(python3 -c "import json; print(json.load(open('$work/second.json'))['upserted'])")
    [ "$upserted" = "$COUNT" ] || { echo "expected $COUNT upserts, got $upserted: $summary"; exit 1; }
    [ "$again_upserted" = 0 ] || { echo "the second sync wrote $again_upserted services"; exit 1; }
    printf '%-12s %10s %10s %12s %12s %14s\n' "$concurrency" "$first" "$upserted" "$aws_calls" "$consul_calls" "$second"
    printf '{"functions":%s,"concurrency":%s,"syncSeconds":%s,"awsCalls":%s,"consulCalls":%s,"unchangedSyncSeconds":%s}\n' \
        "$COUNT" "$concurrency" "$first" "$aws_calls" "$consul_calls" "$second" >> "$results"
done
echo "results: $results"
