#!/usr/bin/env bash
# Soak (not a CI test): lambda-gateway `run` against the Consul API test server (consul-test-server)
# for DURATION seconds, everything on 127.0.0.1, while
#   - mesh-load keeps steady open-loop load on two stable services (orders, payments) over
#     HTTP/1.1 and, in parallel, HTTP/2, as the caller `web` with a leaf from Consul;
#   - config churn goes through Consul's API: churn services linked and unlinked (terminating-gateway
#     entry), their instances deregistered and registered, their service-defaults rewritten, the
#     stable services' service-defaults rewritten (same function), a write burst once a minute;
#   - every ROTATE_EVERY seconds the leaf of orders is rotated, and the CA roots are rotated as
#     Consul does it: a new active root (leaves re-issued from it, the old root still trusted),
#     callers switch to a leaf of the new root, then the old root is pruned (ROTATIONS below);
#   - slow and abusive clients use the same listener, each bounded in count and time: curl reading
#     a 2 MiB answer at 256 KiB/s (must succeed), request heads left unfinished (must be closed by
#     --request-headers-timeout), HTTP/2 clients that ask for large answers and stop taking them
#     (must be closed by --send-timeout), unknown-SNI handshakes and handshakes without a client
#     certificate (must be refused). The gateway runs with TIMEOUT (5 s) for all three timeouts.
# The gateway's RSS (VmRSS) and open fds are sampled every 10 s; /metrics is scraped at the end.
#
# Exit status 0 only if: no request on a stable service failed (mesh-load counted no error and the
# gateway's lambda_gateway_requests_total shows only 2xx for them); the gateway's RSS peak over the
# last minute is at most 20% above its peak over the second minute (W = min(60 s, DURATION/4): the
# samples of [DURATION - W, DURATION] against those of [W, 2W]; a peak, because RSS follows the
# 2 MiB answers held at the moment of a sample); the gateway stayed up and
# exited 0 on SIGTERM; every slow reader got its whole answer; every stalled head was closed by
# the gateway TIMEOUT (-0.5 s, +2 s) after its first byte, every non-reading HTTP/2 client within
# TIMEOUT + 3 s (send_timeout closures counted by the gateway); no refused handshake was
# accepted; every rotation reached the gateway within 30 s (leaves are read every 5 s here,
# --leaf-refresh-interval, instead of every 4 minutes); no client connection was left open
# once every client had stopped (lambda_gateway_connections_open 0).
#
# ROTATIONS. Consul rotates its CA by adding a new active root cross-signed by the old one, so a
# caller with the old bundle still verifies new leaves; the old root is pruned later. The test
# server does not cross-sign, so callers are given the bundle of both roots at once (their old leaf
# is still trusted, by both the old and the new gateway state), and new connections wait for the
# one second around the bundle swap (file `rotating`); once the gateway serves leaves of the new
# root, callers take a new leaf from Consul (a mesh-load run starts with it), and only then is the
# old root pruned (the test server's /_control/prune-roots), so no caller presents a leaf of a
# pruned root. The previous mesh-load run goes on through the rotation on its open connections
# and ends a few seconds later; its bundle lacks the new root, so a gateway that closed open
# connections at a rotation would show as its tls errors.
#
# It stops by itself at most DURATION + 55 s after the build (a watchdog), and stops every process
# it started by PID on any exit.
#
#   Benchmarks/soak.sh                          # 10 minutes, release build
#   DURATION=120 Benchmarks/soak.sh             # a 2-minute trial
#   SMOKE=1 Benchmarks/soak.sh                  # 60 s, debug build, rotations every 20 s
# Knobs: DURATION (600), ROTATE_EVERY (60), RATE (req/s of each of the four mesh-load runs, 100),
# TIMEOUT (5), SWIFT (the swift command, e.g. a wrapper that serializes builds), KEEP=1 (keep the
# work directory). A summary JSON goes to Benchmarks/results/soak-*.json.
set -euo pipefail
cd "$(dirname "$0")"
bench=$(pwd)
root=$(cd .. && pwd)
DURATION=${DURATION:-600}
ROTATE_EVERY=${ROTATE_EVERY:-60}
RATE=${RATE:-100}
TIMEOUT=${TIMEOUT:-5}
SAMPLE_EVERY=10
H1_CONNECTIONS=4
H2_STREAMS=4
CHURN_SERVICES=12
CONFIGURATION=release
SWIFT=${SWIFT:-swift}
if [[ -n "${SMOKE:-}" ]]; then DURATION=60; ROTATE_EVERY=20; RATE=20; CHURN_SERVICES=6; CONFIGURATION=debug; fi
(( DURATION >= 30 && ROTATE_EVERY >= 12 )) || { echo "DURATION must be at least 30 and ROTATE_EVERY at least 12"; exit 2; }

PATH=$PATH:/usr/sbin
need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need nginx nginx-light
need openssl openssl
need curl curl
nginx_bin=$(command -v nginx)
curl_h2=1
curl -V | grep -q HTTP2 || { curl_h2=; echo "(this curl has no HTTP/2: the slow reader uses HTTP/1.1 only)"; }

# A release build is the one the README installs: the Swift runtime linked in (--static-swift-stdlib).
build=(-c "$CONFIGURATION"); [[ $CONFIGURATION == release ]] && build+=(--static-swift-stdlib)
echo "== building (${build[*]})"
for product in lambda-gateway mesh-load consul-test-server; do
    (cd "$root" && $SWIFT build "${build[@]}" --product "$product" >/dev/null)
done
bin_dir=$(cd "$root" && $SWIFT build "${build[@]}" --show-bin-path)
gateway_bin="$bin_dir/lambda-gateway"
load_bin="$bin_dir/mesh-load"
consul_bin="$bin_dir/consul-test-server"
helpers=(python3 "$bench/soak_helpers.py")

work=$(mktemp -d /tmp/lambda-gateway-soak.XXXXXX)
infra=()   # upstream, Consul, gateway, watchdog: stopped at the end
jobs_=()   # load, clients, sampler: they end by themselves by the deadline
cleanup() {
    trap - EXIT INT TERM
    exec 2>/dev/null  # no job notices ("Terminated") for what is stopped here
    for pid in "${jobs_[@]}" "${infra[@]}"; do
        local children
        children=$(pgrep -P "$pid" || true)  # a job's own children (curl, sleep), by parent PID
        kill "$pid" || true                  # the job first, so that it starts nothing more
        [[ -z $children ]] || kill $children || true
    done
    wait || true
    if [[ -n "${KEEP:-}" ]]; then echo "(work directory kept: $work)"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Whatever happens, the script ends by itself: setup, DURATION and the report fit in DURATION + 55 s.
script_pid=$$
(sleep $((DURATION + 55)) || exit 0; echo "soak: still running $((DURATION + 55)) s after the setup began: stopping" >&2; kill -TERM "$script_pid") & infra+=($!)
cd "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
upstream_port=$(free_port); gateway_port=$(free_port); admin_port=$(free_port)
admin="http://127.0.0.1:$admin_port"

echo "== upstream: nginx playing Lambda Invoke on https://127.0.0.1:$upstream_port (as in compare.sh; bulk answers 2 MiB)"
openssl ecparam -name prime256v1 -genkey -noout -out upstream-ca-key.pem
openssl req -x509 -new -key upstream-ca-key.pem -sha256 -days 2 -subj "/CN=Soak upstream CA" -out upstream-ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out upstream-key.pem
openssl req -new -key upstream-key.pem -subj "/CN=localhost" -out upstream.csr
printf "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n" > upstream.ext
openssl x509 -req -in upstream.csr -CA upstream-ca.pem -CAkey upstream-ca-key.pem -CAcreateserial -days 2 -sha256 -extfile upstream.ext -out upstream.pem 2>/dev/null
mkdir -p upstream/files
chmod 711 "$work"  # nginx's worker (nobody when started as root) reads upstream/files
bulk_bytes=$((2 * 1024 * 1024))
python3 -c 'import json,sys; print(json.dumps({"statusCode":200,"headers":{"content-type":"application/octet-stream"},"body":"x"*int(sys.argv[1])}), end="")' "$bulk_bytes" > upstream/files/bulk.json
cat > upstream/nginx.conf <<CONF
worker_processes 1; daemon off; pid $work/upstream/nginx.pid; error_log $work/upstream/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$upstream_port ssl; ssl_certificate $work/upstream.pem; ssl_certificate_key $work/upstream-key.pem;
    # The bulk function's answer is a file; nginx serves files to GET only, so the POST is turned
    # into an internal redirect (error_page makes it a GET).
    location = /bulk.json { internal; root $work/upstream/files; default_type application/json; }
    location ~ ^/2015-03-31/functions/.*bulk/invocations\$ { error_page 405 =200 /bulk.json; return 405; }
    location ~ ^/2015-03-31/functions/.+/invocations\$ {
      default_type application/json;
      return 200 '{"statusCode":200,"headers":{"content-type":"application/json"},"body":"{\\\\"ok\\\\":true}"}';
    }
  }
}
CONF
"$nginx_bin" -c "$work/upstream/nginx.conf" -p "$work/upstream" & infra+=($!)

echo "== Consul: consul-test-server (its CA issues every leaf), services linked through Consul's API"
"$consul_bin" --port-file "$work/consul.port" > consul.log 2>&1 & infra+=($!)
for _ in $(seq 1 100); do [[ -s consul.port ]] && break; sleep 0.1; done
[[ -s consul.port ]] || { echo "consul-test-server did not start:"; cat consul.log; exit 1; }
consul="http://127.0.0.1:$(cat consul.port)"
stable=(orders payments)
churn=()
for i in $(seq 1 "$CHURN_SERVICES"); do churn+=("$(printf 'churn%02d' "$i")"); done
arn_prefix="arn:aws:lambda:us-east-1:123456789012:function:"
"${helpers[@]}" consul-setup --consul "$consul" --stable "$(IFS=,; echo "${stable[*]}")" --bulk bulk --churn "$(IFS=,; echo "${churn[*]}")" --arn-prefix "$arn_prefix"
"${helpers[@]}" identity --consul "$consul" --dir "$work/caller"
td=$(curl -fsS "$consul/v1/agent/connect/ca/roots" | python3 -c 'import json,sys; print(json.load(sys.stdin)["TrustDomain"])')
sni_suffix=".default.dc1.internal.$td"

echo "== gateway: lambda-gateway run on 127.0.0.1:$gateway_port (admin $admin_port), timeouts ${TIMEOUT}s, buffer limit 4 MiB"
for _ in $(seq 1 100); do [[ -s upstream/nginx.pid ]] && break; sleep 0.1; done
[[ -s upstream/nginx.pid ]] || { echo "nginx did not start:"; cat upstream/error.log 2>/dev/null; exit 1; }
AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret AWS_EC2_METADATA_DISABLED=true HOME=/nonexistent \
    "$gateway_bin" run --gateway-name lambda-gateway --listen "127.0.0.1:$gateway_port" --admin "127.0.0.1:$admin_port" \
    --consul-addr "$consul" --register agent --advertise-address 127.0.0.1 --leaf-refresh-interval 5s \
    --lambda-endpoint "https://127.0.0.1:$upstream_port" --lambda-ca-file upstream-ca.pem \
    --request-headers-timeout "${TIMEOUT}s" --client-body-timeout "${TIMEOUT}s" --send-timeout "${TIMEOUT}s" \
    --connection-buffer-limit 4194304 --drain-timeout 5s --log-level info > gateway.log 2>&1 & infra+=($!)
gateway_pid=$!
alive() { grep -qs '^State:[[:space:]]*[^Z]' "/proc/$gateway_pid/status"; }  # a crashed child is a zombie until reaped
"${helpers[@]}" wait-applied --consul "$consul" --admin "$admin" --roots 1 --services orders,payments,bulk >/dev/null \
    || { echo "the gateway did not serve the stable services:"; tail -20 gateway.log; exit 1; }

start=$(date +%s)
until_epoch=$((start + DURATION))
now() { echo $(( $(date +%s) - start )); }
log() { printf '   [%4ds] %s\n' "$(now)" "$*" | tee -a events.txt; }
sleep_until() { while (( $(date +%s) < start + $1 )); do sleep 0.2; done; }
echo "== soak: ${DURATION}s from $(date -u +%H:%M:%SZ), rotations every ${ROTATE_EVERY}s, ${RATE} req/s x 4 mesh-load runs"

# RSS and fds every SAMPLE_EVERY seconds, with the gateway's open connections and held answer bytes.
sampler() {
    local k=0
    while (( k * SAMPLE_EVERY <= DURATION )); do
        sleep_until $((k * SAMPLE_EVERY))
        alive || { echo "$(now) dead" >> samples.txt; return; }
        local metrics
        metrics=$(curl -s --max-time 5 "$admin/metrics" || true)
        echo "$(now) $(awk '/^VmRSS/ {print $2}' "/proc/$gateway_pid/status") $(ls "/proc/$gateway_pid/fd" | wc -l)" \
            "$(awk '/^lambda_gateway_connections_open / {print $2}' <<<"$metrics") $(awk '/^lambda_gateway_held_answer_bytes / {print $2}' <<<"$metrics")" >> samples.txt
        k=$((k + 1))
    done
}
sampler & jobs_+=($!)

# mesh-load runs: one per (protocol, stable service), open loop at RATE, with the caller's current
# bundle and leaf (copied: the caller's files change under them).
segment=0
start_segment() { # seconds
    local dir="$work/load-$segment"
    mkdir -p "$dir"
    cp caller/bundle.pem caller/web.pem caller/web-key.pem "$dir/"
    for service in "${stable[@]}"; do
        local common=(--port "$gateway_port" --sni "$service$sni_suffix" --ca "$dir/bundle.pem" --no-hostname-check --cert "$dir/web.pem" --key "$dir/web-key.pem"
            --rate "$RATE" --duration "$1" --warmup 0)
        "$load_bin" "${common[@]}" --connections "$H1_CONNECTIONS" --label "h1 $service $segment" > "$dir/h1-$service.out" 2>&1 & jobs_+=($!)
        "$load_bin" "${common[@]}" --http2 --connections 1 --streams "$H2_STREAMS" --label "h2 $service $segment" > "$dir/h2-$service.out" 2>&1 & jobs_+=($!)
    done
    log "load run $segment: ${1}s with the caller leaf $(openssl x509 -in caller/web.pem -noout -serial)"
    segment=$((segment + 1))
}

# Rotation schedule within each period of ROTATE_EVERY (60 s: leaf at 5 s, roots at 20 s, prune at 50 s).
leaf_at=$((ROTATE_EVERY / 12)); roots_at=$((ROTATE_EVERY / 3)); prune_at=$((5 * ROTATE_EVERY / 6))
overlap=$((ROTATE_EVERY / 4 < 15 ? ROTATE_EVERY / 4 : 15))
rotation_time() { # period -> when its roots rotate, or nothing when its prune would not fit
    (( $1 * ROTATE_EVERY + prune_at <= DURATION - 3 )) && echo $(($1 * ROTATE_EVERY + roots_at)) || true
}
segment_end() { # period of the rotation that started the segment -> when the segment ends
    local next
    next=$(rotation_time $(($1 + 1)))
    [[ -n $next ]] && echo $((next + overlap < DURATION ? next + overlap : DURATION)) || echo "$DURATION"
}
problems=()
roots=1
applied() { # what, roots, services -> waits until the gateway serves it
    local seconds
    if seconds=$("${helpers[@]}" wait-applied --consul "$consul" --admin "$admin" --roots "$2" --services "$3" 2>>events.txt); then
        log "$1: the gateway serves it after ${seconds}s"
        echo "$1 $seconds" >> applied.txt
    else
        log "$1: NOT applied by the gateway within 30 s"
        problems+=("$1 not applied within 30 s")
    fi
}

# Slow reader: curl takes the bulk answer (2 MiB) at 256 KiB/s, alternating HTTP/1.1 and HTTP/2.
# curl cannot check a SPIFFE ID (Consul leaves carry no DNS name): -k; the gateway checks curl's.
slow_reader() {
    local i=0 version line
    while (( $(date +%s) + 30 < until_epoch && i < 60 )); do
        i=$((i + 1))
        version=--http1.1
        [[ -n $curl_h2 && $((i % 2)) -eq 0 ]] && version=--http2
        while [[ -e caller/rotating ]]; do sleep 0.05; done
        line=$(curl -sS -k "$version" --limit-rate 256k --max-time 60 --cert caller/web.pem --key caller/web-key.pem \
            --resolve "bulk$sni_suffix:$gateway_port:127.0.0.1" -o /dev/null -w '%{http_version} %{http_code} %{size_download} %{time_total}' \
            "https://bulk$sni_suffix:$gateway_port/slow" 2>>slow-errors.txt) || line="curl-exit-$? $line"
        echo "$line" >> slow.txt
        sleep 2
    done
}
slow_reader & jobs_+=($!)
# The abusive clients call bulk (refused handshakes: payments without a client certificate, and an
# unknown SNI), so the gateway's answers to orders and payments are the stable callers' alone.
client_args=(--port "$gateway_port" --dir "$work/caller" --until "$until_epoch" --timeout "$TIMEOUT" --admin "$admin")
"${helpers[@]}" stall "${client_args[@]}" --sni "bulk$sni_suffix" --workers 3 --gap 2 --max-count 300 > stall.json 2>stall.err & jobs_+=($!)
"${helpers[@]}" h2-noread "${client_args[@]}" --sni "bulk$sni_suffix" --streams 8 --gap 2 --max-count 60 > h2-noread.json 2>h2-noread.err & jobs_+=($!)
"${helpers[@]}" refused "${client_args[@]}" --sni "payments$sni_suffix" --unknown-sni "nosuch$sni_suffix" --gap 1 --max-count 600 > refused.json 2>refused.err & jobs_+=($!)
"${helpers[@]}" churn --consul "$consul" --until "$until_epoch" --stable "$(IFS=,; echo "${stable[*]}")" --bulk bulk \
    --churn "$(IFS=,; echo "${churn[*]}")" --arn-prefix "$arn_prefix" --dir "$work/caller" --port "$gateway_port" --sni-suffix "$sni_suffix" --every 5 \
    > churn.json 2>churn.err & jobs_+=($!)

start_segment "$(segment_end -1)"
period=0
while (( period * ROTATE_EVERY + leaf_at < DURATION - 3 )); do
    base=$((period * ROTATE_EVERY))
    sleep_until $((base + leaf_at))
    alive || break
    curl -fsS -X POST "$consul/_control/rotate-leaf?service=orders" >/dev/null
    applied "leaf of orders rotated" "$roots" orders
    at=$(rotation_time "$period")
    if [[ -n $at ]]; then
        sleep_until "$at"
        alive || break
        touch caller/rotating
        sleep 1
        curl -fsS -X POST "$consul/_control/rotate-roots" >/dev/null
        "${helpers[@]}" identity --consul "$consul" --dir caller --bundle-only
        rm -f caller/rotating
        roots=2
        applied "roots rotated (old root kept)" 2 orders,payments,bulk
        "${helpers[@]}" identity --consul "$consul" --dir caller
        start_segment $(( $(segment_end "$period") - $(now) ))
        sleep_until $((base + prune_at))
        alive || break
        curl -fsS -X POST "$consul/_control/prune-roots" >/dev/null
        "${helpers[@]}" identity --consul "$consul" --dir caller --bundle-only
        roots=1
        applied "old root pruned" 1 orders,payments,bulk
    fi
    period=$((period + 1))
done
sleep_until "$DURATION"
alive || problems+=("the gateway exited during the soak (see gateway.log)")

echo "== waiting for the load and the clients to finish"
for pid in "${jobs_[@]}"; do wait "$pid" 2>/dev/null || true; done
sleep 2
gateway_status=dead
if alive; then
    curl -s --max-time 5 "$admin/metrics" > metrics.txt || true
    echo "$(now) $(awk '/^VmRSS/ {print $2}' "/proc/$gateway_pid/status") $(ls "/proc/$gateway_pid/fd" | wc -l)" \
        "$(awk '/^lambda_gateway_connections_open / {print $2}' metrics.txt) $(awk '/^lambda_gateway_held_answer_bytes / {print $2}' metrics.txt)" > after.txt
    kill -TERM "$gateway_pid"
    for _ in $(seq 1 100); do alive || break; sleep 0.1; done
    if alive; then gateway_status=hung; else wait "$gateway_pid" && gateway_status=0 || gateway_status=$?; fi
fi
printf '%s\n' "${problems[@]}" > problems.txt

mkdir -p "$bench/results"
out="$bench/results/soak-$(date -u +%Y%m%d-%H%M%S)${SMOKE:+-smoke}.json"
python3 "$bench/soak_report.py" "$work" "$out" --duration "$DURATION" --rate "$RATE" --timeout "$TIMEOUT" --rotate-every "$ROTATE_EVERY" \
    --bulk-bytes "$bulk_bytes" --gateway-exit "$gateway_status" --configuration "$CONFIGURATION" --date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --stable "$(IFS=,; echo "${stable[*]}")"
