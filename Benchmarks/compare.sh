#!/usr/bin/env bash
# Side by side on this machine, in one run: lambda-gateway and nginx (the floor: mTLS termination and
# proxy_pass, no SigV4, no JSON transform) in front of the same upstream, an nginx that plays the
# Lambda Invoke API over HTTPS with keep-alive. Both contestants get one core (taskset -c 0) and one
# worker / event loop; the load client runs on the other core. Everything stays on 127.0.0.1.
#
#   Benchmarks/compare.sh                 # full run (ROUNDS=3 DURATION=10)
#   SMOKE=1 Benchmarks/compare.sh         # seconds-long run that only checks the pieces work
set -euo pipefail
cd "$(dirname "$0")"
bench=$(pwd)
root=$(cd .. && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
if [[ -n "${SMOKE:-}" ]]; then ROUNDS=1; DURATION=1; CONNECTIONS=4; fi

command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }
command -v openssl >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
nginx_bin=$(command -v nginx)

echo "== building (release)"
(cd "$root" && swift build -c release --product lambda-gateway >/dev/null)
swift build -c release --product mesh-load >/dev/null
gateway_bin="$root/.build/release/lambda-gateway"
load_bin="$bench/.build/release/mesh-load"

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
leaf orders "URI:spiffe://$td/ns/default/dc/dc1/svc/orders,DNS:$sni"
leaf web "URI:spiffe://$td/ns/default/dc/dc1/svc/web"
leaf upstream "DNS:localhost,IP:127.0.0.1"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
upstream_port=$(free_port); peer_port=$(free_port); gateway_port=$(free_port)

echo "== upstream: nginx playing Lambda Invoke on https://127.0.0.1:$upstream_port"
mkdir -p upstream peer
cat > upstream/nginx.conf <<CONF
worker_processes 1; daemon off; pid $work/upstream/nginx.pid; error_log $work/upstream/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$upstream_port ssl; ssl_certificate $work/upstream.pem; ssl_certificate_key $work/upstream-key.pem;
    location ~ ^/2015-03-31/functions/.+/invocations\$ {
      default_type application/json; add_header X-Amz-Executed-Version "\$LATEST";
      return 200 '{"statusCode":200,"headers":{"content-type":"application/json"},"body":"{\\\\"ok\\\\":true}"}';
    }
  }
}
CONF
taskset -c 1 "$nginx_bin" -c "$work/upstream/nginx.conf" -p "$work/upstream" & pids+=($!)

echo "== peer: nginx terminating mTLS on 127.0.0.1:$peer_port, proxy_pass with a keep-alive pool"
cat > peer/nginx.conf <<CONF
worker_processes 1; daemon off; pid $work/peer/nginx.pid; error_log $work/peer/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  upstream lambda { server 127.0.0.1:$upstream_port; keepalive 128; }
  server {
    listen 127.0.0.1:$peer_port ssl; server_name $sni;
    ssl_certificate $work/orders.pem; ssl_certificate_key $work/orders-key.pem;
    ssl_verify_client on; ssl_client_certificate $work/ca.pem;
    location / {
      proxy_pass https://lambda/2015-03-31/functions/orders/invocations;
      proxy_http_version 1.1; proxy_set_header Connection ""; proxy_ssl_session_reuse on;
    }
  }
}
CONF
taskset -c 0 "$nginx_bin" -c "$work/peer/nginx.conf" -p "$work/peer" & pids+=($!); peer_pid=$!

echo "== gateway: lambda-gateway run --config, one event loop, on 127.0.0.1:$gateway_port"
cat > gateway.yaml <<CONF
trustDomain: $td
datacenter: dc1
caFile: ca.pem
services:
  - name: orders
    arn: arn:aws:lambda:us-east-1:123456789012:function:orders
    certFile: orders.pem
    keyFile: orders-key.pem
    intentions:
      - source: web
        action: allow
CONF
AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=secret AWS_EC2_METADATA_DISABLED=true HOME=/nonexistent \
    taskset -c 0 "$gateway_bin" run --config gateway.yaml --listen "127.0.0.1:$gateway_port" --admin 127.0.0.1:0 --event-loops 1 \
    --lambda-endpoint "https://127.0.0.1:$upstream_port" --lambda-ca-file ca.pem --log-level error > gateway.log 2>&1 & pids+=($!); gateway_pid=$!
for _ in $(seq 1 100); do grep -q "listening on" gateway.log 2>/dev/null && break; sleep 0.1; done

mesh=(--sni "$sni" --ca ca.pem --cert web.pem --key web-key.pem)
load() { taskset -c 1 "$load_bin" --duration "$DURATION" --warmup 1 --connections "$CONNECTIONS" "$@" | tail -1; }
json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])$2)" "$1"; }
results="$work/results.jsonl"
: > "$results"

echo "== throughput, closed loop, HTTP/1.1, 1 KB JSON, $CONNECTIONS connections, $ROUNDS round(s) of ${DURATION}s"
for round in $(seq 1 "$ROUNDS"); do
    load --port "$gateway_port" "${mesh[@]}" --label "gateway-throughput" >> "$results"
    load --port "$peer_port" "${mesh[@]}" --label "nginx-throughput" >> "$results"
    load --port "$upstream_port" --sni localhost --ca ca.pem --path /2015-03-31/functions/orders/invocations --label "direct-throughput" >> "$results"
done
best() { python3 - "$results" "$1" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(max((r["rps"] for r in runs if r["label"] == sys.argv[2]), default=0))
PY
}
gateway_rps=$(best gateway-throughput)
rate=$(python3 -c "print(max(10, int($gateway_rps / 2)))")

echo "== latency at $rate req/s (half the gateway's best), open loop"
load --port "$gateway_port" "${mesh[@]}" --rate "$rate" --label "gateway-latency" >> "$results"
load --port "$peer_port" "${mesh[@]}" --rate "$rate" --label "nginx-latency" >> "$results"
load --port "$upstream_port" --sni localhost --ca ca.pem --path /2015-03-31/functions/orders/invocations --rate "$rate" --label "direct-latency" >> "$results"

echo "== full mTLS handshakes per second (a new connection per request)"
load --port "$gateway_port" "${mesh[@]}" --handshake --label "gateway-handshakes" >> "$results"
load --port "$peer_port" "${mesh[@]}" --handshake --label "nginx-handshakes" >> "$results"

gateway_rss=$(awk '/VmHWM/ {print $2}' "/proc/$gateway_pid/status")
peer_rss=$(awk '/VmHWM/ {print $2}' "/proc/$(cat "$work/peer/nginx.pid" 2>/dev/null || echo "$peer_pid")/status" 2>/dev/null || echo 0)
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
mkdir -p "$bench/results"
out="$bench/results/compare-$(date -u +%Y%m%d-%H%M%S)${SMOKE:+-smoke}.json"
python3 - "$results" "$gateway_rss" "$peer_rss" "$stamp" "$(nproc)" "$out" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def pick(label):
    chosen = [r for r in runs if r["label"] == label]
    return max(chosen, key=lambda r: r["rps"]) if chosen else None
g, n, d = pick("gateway-throughput"), pick("nginx-throughput"), pick("direct-throughput")
gl, nl, dl = pick("gateway-latency"), pick("nginx-latency"), pick("direct-latency")
gh, nh = pick("gateway-handshakes"), pick("nginx-handshakes")
table = {
    "date": sys.argv[4], "cores": int(sys.argv[5]),
    "throughput_rps": {"gateway": g["rps"], "nginx": n["rps"], "direct": d["rps"], "ratio": g["rps"] / max(n["rps"], 1)},
    "latency_rate": gl["target_rate"],
    "added_latency_us": {
        "gateway": {"p50": gl["latency_us"]["p50"] - dl["latency_us"]["p50"], "p99": gl["latency_us"]["p99"] - dl["latency_us"]["p99"]},
        "nginx": {"p50": nl["latency_us"]["p50"] - dl["latency_us"]["p50"], "p99": nl["latency_us"]["p99"] - dl["latency_us"]["p99"]},
    },
    "handshakes_per_s": {"gateway": gh["rps"], "nginx": nh["rps"], "ratio": gh["rps"] / max(nh["rps"], 1)},
    "peak_rss_kb": {"gateway": int(sys.argv[2]), "nginx_worker": int(sys.argv[3])},
    "errors": {r["label"]: r["errors"] for r in runs if r["error_count"]},
    "runs": runs,
}
json.dump(table, open(sys.argv[6], "w"), indent=2)
t = table
print(f"""
| {t['date']}, {t['cores']} cores, gateway and nginx on core 0, load on core 1 | lambda-gateway | nginx | ratio |
|---|---|---|---|
| throughput, HTTP/1.1, 1 KB, req/s (direct: {d['rps']:.0f}) | {g['rps']:.0f} | {n['rps']:.0f} | {t['throughput_rps']['ratio']:.2f} |
| added latency p50 at {gl['target_rate']:.0f} req/s, µs | {t['added_latency_us']['gateway']['p50']:.0f} | {t['added_latency_us']['nginx']['p50']:.0f} | |
| added latency p99 at {gl['target_rate']:.0f} req/s, µs | {t['added_latency_us']['gateway']['p99']:.0f} | {t['added_latency_us']['nginx']['p99']:.0f} | |
| full mTLS handshakes/s | {gh['rps']:.0f} | {nh['rps']:.0f} | {t['handshakes_per_s']['ratio']:.2f} |
| peak RSS, MB | {int(sys.argv[2])/1024:.1f} | {int(sys.argv[3])/1024:.1f} (worker) | |
""")
if t["errors"]: print("errors:", t["errors"])
print("written:", sys.argv[6])
PY
