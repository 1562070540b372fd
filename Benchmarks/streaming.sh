#!/usr/bin/env bash
# Response streaming (RESPONSE_STREAM) through the gateway, on 127.0.0.1: time to first byte, the
# cost of a streamed piece, and throughput of a long stream.
#
# Lambda is dev mode's embedded endpoint (`lambda-gateway dev`, its `countdown` function, SigV4
# checked); the gateway measured is a second process, `lambda-gateway run` on dev mode's static
# configuration with one event loop on core 0, so that its CPU time is its own.
#
#   Benchmarks/streaming.sh               # time to first byte, CPU per piece, throughput (release)
#   CALLGRIND=1 Benchmarks/streaming.sh   # also the gateway's instructions per piece under callgrind
#   CALLGRIND=1 CALLGRIND_KEEP=/tmp/cg-stream.out …   # and keep the profile for callgrind_annotate
#   SWIFT=/work/swift-locked …            # builds through another swift command (a lock wrapper)
#   SMOKE=1 Benchmarks/streaming.sh       # seconds-long debug-build run that only checks the pieces work
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
CONFIGURATION=release; SMALL=100000; LARGE=4096; REQUESTS=30
if [[ -n "${SMOKE:-}" ]]; then CONFIGURATION=debug; SMALL=1000; LARGE=16; REQUESTS=5; fi
# A release build is the one the README installs: the Swift runtime linked in (--static-swift-stdlib).
build=(-c "$CONFIGURATION"); [[ $CONFIGURATION == release ]] && build+=(--static-swift-stdlib)
echo "== building (${build[*]})"
${SWIFT:-swift} build "${build[@]}" --product lambda-gateway > /dev/null
bin="$root/.build/$CONFIGURATION/lambda-gateway"
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "not started: $1"; tail -20 "$1"; exit 1; }

# Dev mode, as the Lambda endpoint (its own gateway is not used).
HOME=/nonexistent taskset -c 1 "$bin" dev --listen "127.0.0.1:$(free_port)" --admin "127.0.0.1:$(free_port)" --dir "$work/dev" > "$work/dev.log" 2>&1 & pids+=($!)
wait_for "$work/dev.log" "Serving until Ctrl-C"
lambda_url=$(grep -o 'lambda     http://[0-9.:]*' "$work/dev.log" | awk '{print $2}')
sni=$(grep -o 'countdown\.default[^:]*' "$work/dev.log" | head -1)
greeting_sni=$(grep -o 'greeting\.default[^:]*' "$work/dev.log" | head -1)
export AWS_ACCESS_KEY_ID=AKIDLAMBDAGATEWAYDEV AWS_SECRET_ACCESS_KEY=lambda-gateway-dev-secret-not-for-production AWS_EC2_METADATA_DISABLED=true

start_gateway() { # PREFIX...: the gateway on a new port, under PREFIX (valgrind, say); sets port, gateway_pid
    port=$(free_port)
    # exec: the background job's PID is the gateway's (or valgrind's), so that it is the one stopped.
    (cd "$work/dev" && exec env HOME=/nonexistent "$@" "$bin" run --config gateway.yaml --register none --listen "127.0.0.1:$port" --admin "127.0.0.1:0" \
        --event-loops 1 --lambda-endpoint "$lambda_url" --log-level error > "$work/gateway.log" 2>&1) & pids+=($!)
    gateway_pid=$!
    wait_for "$work/gateway.log" "listening on"
}
caller=(--cacert "$work/dev/ca.pem" --cert "$work/dev/web.pem" --key "$work/dev/web-key.pem")
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks=$(getconf CLK_TCK)

start_gateway taskset -c 0
url="https://$sni:$port"
resolve=(--resolve "$sni:$port:127.0.0.1" --resolve "$greeting_sni:$port:127.0.0.1")

echo "== time to first byte ($REQUESTS requests on one keep-alive HTTP/1.1 connection each; the first dropped)"
ttfb() { # LABEL URL: p50 and p90 of first byte and of the whole answer, after the request was sent
    local urls=()
    for _ in $(seq 1 "$REQUESTS"); do urls+=(-o /dev/null "$2"); done
    curl -sS -N --http1.1 "${caller[@]}" "${resolve[@]}" -w "%{time_pretransfer} %{time_starttransfer} %{time_total}\n" "${urls[@]}" \
        | awk 'NR > 1 { print ($2 - $1) * 1e6, ($3 - $1) * 1e6 }' \
        | python3 -c '
import sys
rows = [tuple(map(float, line.split())) for line in sys.stdin]
first = sorted(r[0] for r in rows); whole = sorted(r[1] for r in rows)
q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))]
print("   %-58s first byte p50 %7.0f us p90 %7.0f us   whole answer p50 %9.0f us" % (sys.argv[1], q(first, .5), q(first, .9), q(whole, .5)))' "$1"
}
ttfb "streamed: 2 pieces of 64 B, 200 ms apart" "$url/events?n=2&size=64&delay_ms=200"
ttfb "streamed: prelude (text/event-stream), 1 event" "$url/events?n=1&delay_ms=0"
ttfb "buffered, for reference: greeting (whole answer ~60 B)" "https://$greeting_sni:$port/greet"

echo "== CPU per piece and throughput (the gateway's utime+stime from /proc, one request each)"
per_piece() { # LABEL PIECES SIZE
    local before after bytes seconds
    before=$(cpu_ticks "$gateway_pid")
    read -r bytes seconds < <(curl -sS -N --http1.1 "${caller[@]}" "${resolve[@]}" -o /dev/null -w "%{size_download} %{time_total}\n" "$url/events?n=$2&size=$3&delay_ms=0")
    after=$(cpu_ticks "$gateway_pid")
    python3 -c '
import sys
label, pieces, size, bytes_, seconds, ticks, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
assert bytes_ == pieces * size, "got %d bytes of %d" % (bytes_, pieces * size)
cpu = ticks / hz
print("   %-40s %6.1f MB/s   gateway CPU %5.2f s: %6.2f us per piece, %5.2f s per GB" % (label, bytes_ / seconds / 1e6, cpu, cpu / pieces * 1e6, cpu / (bytes_ / 1e9)))' \
        "$1" "$2" "$3" "$bytes" "$seconds" "$((after - before))" "$ticks"
}
per_piece "$SMALL pieces of 64 B" "$SMALL" 64
per_piece "$LARGE pieces of 64 KiB" "$LARGE" 65536

if [[ -n "${CALLGRIND:-}" ]]; then
    echo "== callgrind: the gateway's instructions per piece (11,000 pieces less 1,000, 64 B each)"
    kill "$gateway_pid"; wait "$gateway_pid" 2>/dev/null || true
    # Valgrind 3.19 cannot read the toolchain's DWARF 5: a copy without debug sections.
    strip --strip-debug -o "$work/lambda-gateway-nodebug" "$bin"
    bin="$work/lambda-gateway-nodebug"
    start_gateway taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$work/cg.out"
    url="https://$sni:$port"; resolve=(--resolve "$sni:$port:127.0.0.1")
    count() { # PIECES: instructions from zeroing to the dump, for one streamed answer of PIECES pieces
        curl -sS -N --http1.1 "${caller[@]}" "${resolve[@]}" -o /dev/null "$url/events?n=10&size=64&delay_ms=0"  # warm up
        callgrind_control -z "$gateway_pid" > /dev/null
        curl -sS -N --http1.1 "${caller[@]}" "${resolve[@]}" -o /dev/null "$url/events?n=$1&size=64&delay_ms=0"
        callgrind_control -d "$gateway_pid" > /dev/null
        awk '/^summary:/ { print $2; exit }' "$(ls -t "$work"/cg.out.* | head -1)"
    }
    small=$(count 1000)
    large=$(count 11000)
    echo "   1,000 pieces: $small instructions; 11,000 pieces: $large; per piece: $(( (large - small) / 10000 ))"
    # CALLGRIND_KEEP=FILE: the 11,000-piece profile, for callgrind_annotate.
    if [[ -n "${CALLGRIND_KEEP:-}" ]]; then cp "$(ls -t "$work"/cg.out.* | head -1)" "$CALLGRIND_KEEP"; fi
fi
