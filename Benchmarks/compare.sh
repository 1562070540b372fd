#!/usr/bin/env bash
# Side by side on this machine, in one run: lambda-gateway and nginx (the floor: mTLS termination and
# proxy_pass, no SigV4, no JSON transform) in front of the same upstream, an nginx that plays the
# Lambda Invoke API over HTTPS with keep-alive. Both contestants get one core (taskset -c 0) and one
# worker / event loop; the load client runs on the other core. Everything stays on 127.0.0.1.
#
# Both are configured with SERVICES linked services (1,000 by default: a leaf certificate and an SNI
# route each); the load goes to one of them.
#
#   Benchmarks/compare.sh                 # full run (ROUNDS=3 DURATION=10 SERVICES=1000)
#   CALLGRIND=1000 Benchmarks/compare.sh  # also instructions per request under callgrind, both contestants
#   CALLGRIND=1000 CALLGRIND_ONLY=1 CALLGRIND_KEEP=/tmp/cg.out Benchmarks/compare.sh
#                                         # only the callgrind counts, the gateway's profiles kept
#                                         # (HTTP/1.1, and HTTP/2 in /tmp/cg.out.h2) for callgrind_annotate
#   SWIFT=/work/swift-locked …            # builds through another swift command (a lock wrapper, say)
#   ACCESS_LOG=1 …                        # both contestants write an access log to a file (the gateway
#                                         # Consul's default JSON format, nginx its combined format)
#   SYSCALLS=2000 …                       # also system calls per request (strace -c), both contestants
#   PERF=8 PERF_KEEP=/tmp/perf …          # also a native profile of each contestant (perf record, the CPU's
#                                         # own instructions: SHA extensions on, unlike valgrind) under 8 s of
#                                         # HTTP/1.1 load, kept in /tmp/perf.gateway and /tmp/perf.nginx, and
#                                         # the same under ab in /tmp/perf.gateway-ab and /tmp/perf.nginx-ab
#   PERF_ONLY=1 …                         # with PERF: nothing else (no throughput, latency, handshakes)
#   SMOKE=1 Benchmarks/compare.sh         # seconds-long debug-build run that only checks the pieces
#                                         # work: exits non-zero if any run failed or had errors
set -euo pipefail
cd "$(dirname "$0")"
bench=$(pwd)
root=$(cd .. && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
H2_CONNECTIONS=${H2_CONNECTIONS:-4}
H2_STREAMS=${H2_STREAMS:-16}
SERVICES=${SERVICES:-1000}
CONFIGURATION=release
if [[ -n "${SMOKE:-}" ]]; then ROUNDS=1; DURATION=1; CONNECTIONS=4; H2_CONNECTIONS=2; H2_STREAMS=4; SERVICES=20; CONFIGURATION=debug; fi

PATH=$PATH:/usr/sbin
command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }
command -v ab >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq apache2-utils >/dev/null; }
command -v openssl >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
nginx_bin=$(command -v nginx)

# A release build is the one the README installs: the Swift runtime linked in (--static-swift-stdlib).
build=(-c "$CONFIGURATION"); [[ $CONFIGURATION == release ]] && build+=(--static-swift-stdlib)
echo "== building (${build[*]})"
(cd "$root" && ${SWIFT:-swift} build "${build[@]}" --product lambda-gateway >/dev/null && ${SWIFT:-swift} build "${build[@]}" --product mesh-load >/dev/null)
bin_dir=$(cd "$root" && ${SWIFT:-swift} build "${build[@]}" --show-bin-path)
# GATEWAY_BIN=path: measure another build of the gateway (an older commit's, for an A/B).
gateway_bin="${GATEWAY_BIN:-$bin_dir/lambda-gateway}"
load_bin="$bin_dir/mesh-load"

work=$(mktemp -d /tmp/lambda-gateway-compare.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

echo "== certificates (Consul-like CA, EC P-256, SPIFFE URI SANs) in $work"
td="11111111-2222-3333-4444-555555555555.consul"
sni="orders.default.dc1.internal.$td"
cd "$work"
openssl ecparam -name prime256v1 -genkey -noout -out ca-key.pem
openssl req -x509 -new -key ca-key.pem -sha256 -days 2 -subj "/CN=Consul CA" -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -addext "subjectAltName=URI:spiffe://$td" 2>/dev/null
leaf() { # name, SAN
    openssl ecparam -name prime256v1 -genkey -noout -out "$1-key.pem"
    openssl req -new -key "$1-key.pem" -subj "/CN=$1" -out "$1.csr"
    printf "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n" "$2" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
leaf web "URI:spiffe://$td/ns/default/dc/dc1/svc/web"
leaf upstream "DNS:localhost,IP:127.0.0.1"
# The linked services: "orders" takes the load, the rest are there to be held in memory and routed
# past. Each gets its own leaf (one shared key keeps generation to seconds).
openssl ecparam -name prime256v1 -genkey -noout -out service-key.pem
openssl req -new -key service-key.pem -subj "/CN=service" -out service.csr
services=(orders)
for i in $(seq 2 "$SERVICES"); do services+=("$(printf 'fn%04d' "$i")"); done
mkdir -p leaves
for name in "${services[@]}"; do
    printf "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:spiffe://%s/ns/default/dc/dc1/svc/%s,DNS:%s.default.dc1.internal.%s\n" "$td" "$name" "$name" "$td" > leaves/ext
    openssl x509 -req -in service.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -sha256 -extfile leaves/ext -out "leaves/$name.pem" 2>/dev/null
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
upstream_port=$(free_port); peer_port=$(free_port); gateway_port=$(free_port)
peer_access_log=off
if [[ -n "${ACCESS_LOG:-}" ]]; then peer_access_log="$work/peer-access.log"; fi

echo "== upstream: nginx playing Lambda Invoke on https://127.0.0.1:$upstream_port"
mkdir -p upstream peer
cat > upstream/nginx.conf <<CONF
worker_processes 1; daemon off; pid $work/upstream/nginx.pid; error_log $work/upstream/error.log warn;
events { worker_connections 4096; }
http {
  access_log $peer_access_log; keepalive_requests 1000000; keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$upstream_port ssl; ssl_certificate $work/upstream.pem; ssl_certificate_key $work/upstream-key.pem;
    location ~ ^/2015-03-31/functions/.+/invocations\$ {
      default_type application/json;
      return 200 '{"statusCode":200,"headers":{"content-type":"application/json"},"body":"{\\\\"ok\\\\":true}"}';
    }
  }
}
CONF
taskset -c 1 "$nginx_bin" -c "$work/upstream/nginx.conf" -p "$work/upstream" & pids+=($!)

echo "== peer: nginx terminating mTLS on 127.0.0.1:$peer_port, proxy_pass with a keep-alive pool"
{
cat <<CONF
worker_processes 1; daemon off; pid $work/peer/nginx.pid; error_log $work/peer/error.log warn;
events { worker_connections 4096; }
http {
  access_log $peer_access_log; keepalive_requests 1000000; keepalive_timeout 300s;
  server_names_hash_max_size 8192; server_names_hash_bucket_size 128;
  upstream lambda { server 127.0.0.1:$upstream_port; keepalive 128; }
  ssl_verify_client on; ssl_client_certificate $work/ca.pem; ssl_certificate_key $work/service-key.pem;
  proxy_http_version 1.1; proxy_set_header Connection ""; proxy_ssl_session_reuse on;
CONF
for name in "${services[@]}"; do
cat <<CONF
  server {
    listen 127.0.0.1:$peer_port ssl http2; server_name $name.default.dc1.internal.$td;
    ssl_certificate $work/leaves/$name.pem;
    location / { rewrite ^ /2015-03-31/functions/$name/invocations break; proxy_pass https://lambda; }
  }
CONF
done
echo "}"
} > peer/nginx.conf
taskset -c 0 "$nginx_bin" -c "$work/peer/nginx.conf" -p "$work/peer" & pids+=($!)

echo "== gateway: lambda-gateway run --config, one event loop, on 127.0.0.1:$gateway_port"
{
printf 'trustDomain: %s\ndatacenter: dc1\ncaFile: ca.pem\n' "$td"
if [[ -n "${ACCESS_LOG:-}" ]]; then printf 'accessLogs:\n  type: file\n  path: gateway-access.log\n'; fi
printf 'services:\n'
for name in "${services[@]}"; do
    printf '  - name: %s\n    arn: arn:aws:lambda:us-east-1:123456789012:function:%s\n    protocol: http2\n    certFile: leaves/%s.pem\n    keyFile: service-key.pem\n    intentions:\n      - source: web\n        action: allow\n' "$name" "$name" "$name"
done
} > gateway.yaml
AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret AWS_EC2_METADATA_DISABLED=true HOME=/nonexistent \
    taskset -c 0 "$gateway_bin" run --config gateway.yaml --listen "127.0.0.1:$gateway_port" --admin 127.0.0.1:0 --event-loops 1 \
    --lambda-endpoint "https://127.0.0.1:$upstream_port" --lambda-ca-file ca.pem --log-level error > gateway.log 2>&1 & pids+=($!); gateway_pid=$!
for _ in $(seq 1 300); do grep -q "listening on" gateway.log 2>/dev/null && break; sleep 0.1; done
grep -q "listening on" gateway.log || { echo "the gateway did not start:"; cat gateway.log; exit 1; }
for _ in $(seq 1 100); do [[ -s peer/nginx.pid && -s upstream/nginx.pid ]] && break; sleep 0.1; done
for side in upstream peer; do
    [[ -s $side/nginx.pid ]] || { echo "nginx ($side) did not start:"; cat "$side/error.log" 2>/dev/null; exit 1; }
done
peer_worker=$(pgrep -P "$(cat peer/nginx.pid)" | head -1)

mesh=(--sni "$sni" --ca ca.pem --cert web.pem --key web-key.pem)
direct=(--port "$upstream_port" --sni localhost --ca ca.pem --path /2015-03-31/functions/orders/invocations)
results="$work/results.jsonl"
: > "$results"
# cpu_ticks PID: user + system clock ticks the process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# measure PID LABEL mesh-load-args...: one run, its JSON line with the CPU seconds PID used during it.
measure() {
    local pid=$1 label=$2; shift 2
    local before output after
    before=$(cpu_ticks "$pid")
    output=$(taskset -c 1 "$load_bin" --duration "$DURATION" --warmup 1 --label "$label" "$@")
    after=$(cpu_ticks "$pid")
    echo "$output" | head -2 | sed 's/^/   /'
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["cpu_s"]=(int(sys.argv[3])-int(sys.argv[2]))/int(sys.argv[4]); print(json.dumps(r))' \
        "$(echo "$output" | tail -1)" "$before" "$after" "$(getconf CLK_TCK)" >> "$results"
}
upstream_worker=$(pgrep -P "$(cat upstream/nginx.pid)" | head -1)
best() { python3 -c 'import json,sys; print(max((r["rps"] for r in map(json.loads, open(sys.argv[1])) if r["label"] == sys.argv[2]), default=0))' "$results" "$1"; }

# A third-party client too: ApacheBench with keep-alive, the same 1 KB JSON POST, its client
# certificate and key in one file, SNI from the Host header.
AB_CONNECTIONS=${AB_CONNECTIONS:-16}
cat web.pem web-key.pem > web-bundle.pem
python3 -c 'import sys; sys.stdout.write("{\"pad\":\"" + "x" * (1024 - 10) + "\"}")' > body.json
# measure_ab PID LABEL PORT: one ab run, as a JSON line like mesh-load's, with PID's CPU seconds.
measure_ab() {
    local pid=$1 label=$2 port=$3 before output after
    before=$(cpu_ticks "$pid")
    output=$(taskset -c 1 ab -q -k -E web-bundle.pem -H "Host: $sni" -c "$AB_CONNECTIONS" -t "$DURATION" -n 100000000 \
        -p body.json -T application/json "https://127.0.0.1:$port/load" 2>&1 || true)
    after=$(cpu_ticks "$pid")
    python3 "$bench/ab_result.py" "$label" "$before" "$after" "$(getconf CLK_TCK)" "$AB_CONNECTIONS" <<< "$output" | tee -a "$results" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("   %s: %.0f req/s, %d errors" % (r["label"], r["rps"], r["error_count"]))'
}
if [[ -z "${CALLGRIND_ONLY:-}${PERF_ONLY:-}" ]]; then
echo "== throughput, closed loop, 1 KB JSON, $ROUNDS round(s) of ${DURATION}s: HTTP/1.1 over $CONNECTIONS connections, HTTP/2 over $H2_CONNECTIONS x $H2_STREAMS streams"
for round in $(seq 1 "$ROUNDS"); do
    measure "$gateway_pid" gateway-h1 --port "$gateway_port" "${mesh[@]}" --connections "$CONNECTIONS"
    measure "$peer_worker" nginx-h1 --port "$peer_port" "${mesh[@]}" --connections "$CONNECTIONS"
    measure "$upstream_worker" direct-h1 "${direct[@]}" --connections "$CONNECTIONS"
    measure "$gateway_pid" gateway-h2 --port "$gateway_port" "${mesh[@]}" --http2 --connections "$H2_CONNECTIONS" --streams "$H2_STREAMS"
    measure "$peer_worker" nginx-h2 --port "$peer_port" "${mesh[@]}" --http2 --connections "$H2_CONNECTIONS" --streams "$H2_STREAMS"
done

echo "== throughput, closed loop, ab -k over $AB_CONNECTIONS connections (HTTP/1.1, 1 KB JSON), $ROUNDS round(s) of ${DURATION}s"
for round in $(seq 1 "$ROUNDS"); do
    measure_ab "$gateway_pid" gateway-ab "$gateway_port"
    measure_ab "$peer_worker" nginx-ab "$peer_port"
done
rate=$(python3 -c "print(max(10, int($(best gateway-h1) / 2)))")

echo "== latency, open loop at $rate req/s (half the gateway's best HTTP/1.1 throughput), $CONNECTIONS connections"
for round in $(seq 1 "$ROUNDS"); do
    measure "$gateway_pid" gateway-latency --port "$gateway_port" "${mesh[@]}" --connections "$CONNECTIONS" --rate "$rate"
    measure "$peer_worker" nginx-latency --port "$peer_port" "${mesh[@]}" --connections "$CONNECTIONS" --rate "$rate"
    measure "$upstream_worker" direct-latency "${direct[@]}" --connections "$CONNECTIONS" --rate "$rate"
done

echo "== full mTLS handshakes per second (a new connection per request, no resumption)"
for round in $(seq 1 "$ROUNDS"); do
    measure "$gateway_pid" gateway-handshakes --port "$gateway_port" "${mesh[@]}" --connections "$CONNECTIONS" --handshake
    measure "$peer_worker" nginx-handshakes --port "$peer_port" "${mesh[@]}" --connections "$CONNECTIONS" --handshake
done

fi

# CALLGRIND=N: user-space instructions per request of the gateway, counted by valgrind (stable on a
# shared machine, unlike time): a second instance under callgrind, its counters zeroed before
# mesh-load sends N requests at a fixed rate over 4 keep-alive connections and dumped after (the 4
# handshakes and the idle timers of those seconds are counted too). All threads are counted.
if [[ -n "${CALLGRIND:-}" ]]; then
    echo "== callgrind: instructions per request, gateway and nginx ($CALLGRIND requests each, HTTP/1.1 over 4 connections, HTTP/2 over 2 x 4 streams, ab over 4 connections)"
    # Valgrind 3.19 cannot read the toolchain's DWARF 5 ("unhandled dwarf2 abbrev form code 0x25"):
    # the same binary without its debug sections (the symbol table stays, so functions keep names).
    strip --strip-debug -o "$work/lambda-gateway-nodebug" "$gateway_bin"
    cg_port=$(free_port); cgn_port=$(free_port)
    AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret AWS_EC2_METADATA_DISABLED=true HOME=/nonexistent \
        taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$work/callgrind-gateway.out" \
        "$work/lambda-gateway-nodebug" run --config gateway.yaml --listen "127.0.0.1:$cg_port" --admin 127.0.0.1:0 --event-loops 1 \
        --lambda-endpoint "https://127.0.0.1:$upstream_port" --lambda-ca-file ca.pem --log-level error > callgrind.log 2>&1 & pids+=($!); cg_pid=$!
    # nginx as one process (no master), so that valgrind follows the worker that serves.
    mkdir -p cg-nginx
    sed -e "s/127.0.0.1:$peer_port/127.0.0.1:$cgn_port/g" -e "s#$work/peer/#$work/cg-nginx/#g" -e "s/^worker_processes 1;/worker_processes 1; master_process off;/" peer/nginx.conf > cg-nginx/nginx.conf
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$work/callgrind-nginx.out" "$nginx_bin" -c "$work/cg-nginx/nginx.conf" -p "$work/cg-nginx" > cg-nginx.log 2>&1 & pids+=($!); cgn_pid=$!
    for _ in $(seq 1 1200); do grep -q "listening on" callgrind.log 2>/dev/null && break; sleep 0.1; done
    grep -q "listening on" callgrind.log || { echo "the gateway did not start under valgrind:"; tail -20 callgrind.log; exit 1; }
    for _ in $(seq 1 1200); do python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $cgn_port), 1)" 2>/dev/null && break; sleep 0.1; done
    # cg_count PID PORT LABEL DUMP mesh-load-args...: warm up, zero the counters, send CALLGRIND
    # requests at a fixed rate, dump; prints the instructions per request (the dump's `summary:`
    # line: everything between zeroing and the dump; all threads).
    cg_count() {
        local pid=$1 port=$2 label=$3 dump=$4; shift 4
        # The warm-up has the measured run's shape, so that the contestant's connections to the
        # upstream are open before counting starts: at a lower rate the gateway's pool opened its
        # second or third inside the window, some run-to-run noise of 10-20k on HTTP/2.
        taskset -c 1 "$load_bin" --port "$port" "${mesh[@]}" "$@" --rate 100 --duration 3 --warmup 0 --label cg-warmup > /dev/null
        callgrind_control -z "$pid" > /dev/null
        local output requests total
        output=$(taskset -c 1 "$load_bin" --port "$port" "${mesh[@]}" "$@" --rate 100 --duration "$(( (CALLGRIND + 99) / 100 ))" --warmup 0 --label "$label")
        callgrind_control -d "$pid" > /dev/null
        requests=$(echo "$output" | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
        total=$(awk '/^summary:/ { print $2; exit }' "$dump")
        echo "   $label: $requests requests, $total instructions: $(( total / requests )) per request" >&2
        echo "\"$label\":{\"requests\":$requests,\"instructions\":$total,\"instructionsPerRequest\":$(( total / requests ))}"
    }
    # cg_ab PID PORT LABEL DUMP: the same with `ab -k -c 4` as the client, CALLGRIND requests as
    # fast as the contestant answers: ab's head (`Host`, `User-Agent`, `Accept`, `Content-type`,
    # `Connection: Keep-Alive`, names capitalised) where mesh-load sends a connect proxy's.
    cg_ab() {
        local pid=$1 port=$2 label=$3 dump=$4 output requests total
        ab_run() { taskset -c 1 ab -k -E web-bundle.pem -H "Host: $sni" -c 4 -n "$1" -p body.json -T application/json "https://127.0.0.1:$port/load" 2>&1 || true; }
        ab_run 200 > /dev/null
        callgrind_control -z "$pid" > /dev/null
        output=$(ab_run "$CALLGRIND")
        callgrind_control -d "$pid" > /dev/null
        requests=$(echo "$output" | awk '/^Complete requests:/ { print $3 }')
        if [[ -z "$requests" ]] || echo "$output" | grep -Eq '^(Failed requests: +[1-9]|Non-2xx)'; then echo "   $label: ab failed:" >&2; echo "$output" | tail -20 >&2; exit 1; fi
        total=$(awk '/^summary:/ { print $2; exit }' "$dump")
        echo "   $label: $requests requests, $total instructions: $(( total / requests )) per request" >&2
        echo "\"$label\":{\"requests\":$requests,\"instructions\":$total,\"instructionsPerRequest\":$(( total / requests ))}"
    }
    cg_rows=$(cg_count "$cg_pid" "$cg_port" gateway-h1 "$work/callgrind-gateway.out.1" --connections 4)
    cg_rows+=,$(cg_count "$cg_pid" "$cg_port" gateway-h2 "$work/callgrind-gateway.out.2" --http2 --connections 2 --streams 4)
    cg_rows+=,$(cg_ab "$cg_pid" "$cg_port" gateway-ab "$work/callgrind-gateway.out.3")
    cg_rows+=,$(cg_count "$cgn_pid" "$cgn_port" nginx-h1 "$work/callgrind-nginx.out.1" --connections 4)
    cg_rows+=,$(cg_count "$cgn_pid" "$cgn_port" nginx-h2 "$work/callgrind-nginx.out.2" --http2 --connections 2 --streams 4)
    cg_rows+=,$(cg_ab "$cgn_pid" "$cgn_port" nginx-ab "$work/callgrind-nginx.out.3")
    kill "$cg_pid" "$cgn_pid"; wait "$cg_pid" "$cgn_pid" 2>/dev/null || true
    if [[ -n "${CALLGRIND_KEEP:-}" ]]; then cp "$work/callgrind-gateway.out.1" "$CALLGRIND_KEEP"; cp "$work/callgrind-gateway.out.2" "$CALLGRIND_KEEP.h2"; cp "$work/callgrind-gateway.out.3" "$CALLGRIND_KEEP.ab"; fi
    echo "{$cg_rows}" > "$work/callgrind.json"
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); [print("   gateway / nginx, %s: %.2fx" % (p, r["gateway-"+p]["instructionsPerRequest"] / r["nginx-"+p]["instructionsPerRequest"])) for p in ("h1", "h2", "ab")]' "$work/callgrind.json"
fi

# SYSCALLS=N: system calls per request of the gateway and of nginx (where the kernel half of the CPU
# per request goes), counted by `strace -c -f` attached to the running contestant (all its threads)
# while mesh-load sends N requests at a fixed rate over 4 keep-alive connections. The second before
# the load, and the timers of those seconds, are counted too.
if [[ -n "${SYSCALLS:-}" ]]; then
    command -v strace >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null; }
    echo "== system calls per request, gateway and nginx ($SYSCALLS requests each, HTTP/1.1 over 4 connections, HTTP/2 over 2 x 4 streams)"
    # sc_count PID PORT LABEL mesh-load-args...: the calls per request, by name, as a JSON member.
    sc_count() {
        local pid=$1 port=$2 label=$3; shift 3
        taskset -c 1 "$load_bin" --port "$port" "${mesh[@]}" "$@" --rate 20 --duration 1 --warmup 0 --label sc-warmup > /dev/null
        strace -c -f -o "$work/strace-$label.txt" -p "$pid" 2> /dev/null & local tracer=$!
        sleep 1
        local output
        output=$(taskset -c 1 "$load_bin" --port "$port" "${mesh[@]}" "$@" --rate 200 --duration "$(( (SYSCALLS + 199) / 200 ))" --warmup 0 --label "$label")
        kill -INT "$tracer"; wait "$tracer" 2> /dev/null || true
        python3 "$bench/strace_summary.py" "$label" "$work/strace-$label.txt" "$(echo "$output" | tail -1)"
    }
    sc_rows=$(sc_count "$gateway_pid" "$gateway_port" gateway-h1 --connections 4)
    sc_rows+=,$(sc_count "$peer_worker" "$peer_port" nginx-h1 --connections 4)
    sc_rows+=,$(sc_count "$gateway_pid" "$gateway_port" gateway-h2 --http2 --connections 2 --streams 4)
    sc_rows+=,$(sc_count "$peer_worker" "$peer_port" nginx-h2 --http2 --connections 2 --streams 4)
    echo "{$sc_rows}" > "$work/syscalls.json"
fi

# PERF=S: where each contestant's CPU goes natively, sampled by `perf record` (cpu-clock, this VM has
# no hardware counters) while mesh-load drives S seconds of closed-loop HTTP/1.1 load. Read with
# `perf report -i $PERF_KEEP.gateway --no-children --sort dso,sym`.
if [[ -n "${PERF:-}" ]]; then
    command -v perf >/dev/null || { echo "PERF needs perf (Debian's linux-perf)"; exit 1; }
    echo "== perf record, ${PERF}s of HTTP/1.1 load over $CONNECTIONS connections"
    for contestant in gateway nginx; do
        if [[ $contestant == gateway ]]; then pid=$gateway_pid port=$gateway_port; else pid=$peer_worker port=$peer_port; fi
        perf record -q -e cpu-clock -F 4999 -g -p "$pid" -o "$work/perf-$contestant.data" -- sleep "$(( PERF + 1 ))" 2> /dev/null & recorder=$!
        DURATION=$PERF measure "$pid" "perf-$contestant" --port "$port" "${mesh[@]}" --connections "$CONNECTIONS" > /dev/null
        wait "$recorder" || true
        # The same under ab, whose HTTP/1.0 keep-alive requests cost both contestants differently.
        perf record -q -e cpu-clock -F 4999 -g -p "$pid" -o "$work/perf-$contestant-ab.data" -- sleep "$(( PERF + 1 ))" 2> /dev/null & recorder=$!
        DURATION=$PERF measure_ab "$pid" "perf-$contestant-ab" "$port" > /dev/null
        wait "$recorder" || true
        for run in "$contestant" "$contestant-ab"; do
            python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["label"] == sys.argv[2]][-1]; served = r["rps"] * (r["duration_s"] + r.get("warmup_s", 0)); print("   %s: %.0f req/s, %s µs CPU per request" % (sys.argv[2], r["rps"], "%.1f" % (1e6 * r["cpu_s"] / served) if served else "no request, no"))' "$results" "perf-$run"
            perf report -i "$work/perf-$run.data" --no-children --sort dso --stdio -g none > "$work/perf-$run.txt" 2> /dev/null || true
            grep '%' "$work/perf-$run.txt" | head -6 | sed "s/^/   $run /" || true
            if [[ -n "${PERF_KEEP:-}" ]]; then cp "$work/perf-$run.data" "$PERF_KEEP.$run"; fi
        done
    done
fi

if [[ -n "${CALLGRIND_ONLY:-}${PERF_ONLY:-}" ]]; then exit 0; fi
gateway_rss=$(awk '/VmHWM/ {print $2}' "/proc/$gateway_pid/status")
peer_rss=$(awk '/VmHWM/ {print $2}' "/proc/$peer_worker/status")
peer_master_rss=$(awk '/VmHWM/ {print $2}' "/proc/$(cat peer/nginx.pid)/status")
mkdir -p "$bench/results"
out="$bench/results/compare-$(date -u +%Y%m%d-%H%M%S)${SMOKE:+-smoke}.json"
python3 "$bench/compare_report.py" "$results" "$out" \
    --rss "$gateway_rss" "$peer_rss" "$peer_master_rss" --services "$SERVICES" --cores "$(nproc)" --date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --configuration "$CONFIGURATION" ${CALLGRIND:+--callgrind "$work/callgrind.json"} ${SYSCALLS:+--syscalls "$work/syscalls.json"} \
    --settings "h1 $CONNECTIONS connections; h2 $H2_CONNECTIONS connections x $H2_STREAMS streams; $ROUNDS rounds of ${DURATION}s" ${SMOKE:+--smoke}
