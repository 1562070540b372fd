#!/usr/bin/env bash
# Small requests' latency on a one-event-loop gateway while another connection sends 4 MB bodies
# back to back: how much a large body's encoding and SigV4 hash hold up the loop's other
# connections. Lambda is dev mode's embedded endpoint in a process of its own (core 1); the gateway
# is `lambda-gateway run` on core 0. Build first: swift build -c release --static-swift-stdlib --product lambda-gateway.
#
#   Benchmarks/large-bodies.sh            # the release build
#   BIN=/path/to/lambda-gateway Benchmarks/large-bodies.sh   # another build (an A/B)
#   BIG=echo Benchmarks/large-bodies.sh   # the 4 MB bodies go to dev's echo function, so a 4 MB
#                                         # answer comes back too (its decoding, not only the body's)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BIN:-$(pwd)/.build/release/lambda-gateway}
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
fp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wf() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "not started $1"; exit 1; }
HOME=/nonexistent taskset -c 1 "$bin" dev --listen "127.0.0.1:$(fp)" --admin "127.0.0.1:$(fp)" --dir "$work/dev" > "$work/dev.log" 2>&1 & pids+=($!)
wf "$work/dev.log" "Serving until"
url=$(grep -o 'lambda     http://[0-9.:]*' "$work/dev.log" | awk '{print $2}')
sni=$(grep -o 'greeting\.default[^:]*' "$work/dev.log" | head -1)
big_sni=$(grep -o "${BIG:-greeting}\.default[^:]*" "$work/dev.log" | head -1)
port=$(fp)
(cd "$work/dev" && exec env HOME=/nonexistent AWS_ACCESS_KEY_ID=AKIDLAMBDAGATEWAYDEV AWS_SECRET_ACCESS_KEY=lambda-gateway-dev-secret-not-for-production AWS_EC2_METADATA_DISABLED=true taskset -c 0 "$bin" run --config gateway.yaml --register none --listen "127.0.0.1:$port" --admin 127.0.0.1:0 --event-loops 1 --lambda-endpoint "$url" --log-level error > "$work/gw.log" 2>&1) & pids+=($!)
wf "$work/gw.log" "listening on"
c=(--cacert "$work/dev/ca.pem" --cert "$work/dev/web.pem" --key "$work/dev/web-key.pem" --resolve "$sni:$port:127.0.0.1" --resolve "$big_sni:$port:127.0.0.1")
head -c 4000000 /dev/zero | tr '\0' 'x' | sed 's/^/{"b":"/; s/$/"}/' > "$work/big.json"
# the large-body client: 5 MB bodies back to back for the whole run
( for i in $(seq 1 400); do curl -sS --http1.1 "${c[@]}" -o /dev/null -w '%{http_code}\n' -H 'content-type: application/json' --data-binary "@$work/big.json" "https://$big_sni:$port/greet" >> "$work/big-codes" || true; done ) & big=$!; pids+=($big)
sleep 1
urls=(); for i in $(seq 1 300); do urls+=(-o /dev/null "https://$sni:$port/greet"); done
curl -sS --http1.1 "${c[@]}" -w "%{time_total}\n" "${urls[@]}" | awk 'NR>1{print $1*1e6}' | sort -n | awk '{a[NR]=$1} END {printf "small requests during 4 MB posts: p50 %.0f us  p90 %.0f us  p99 %.0f us  max %.0f us  (n=%d)\n", a[int(NR*.5)], a[int(NR*.9)], a[int(NR*.99)], a[NR], NR}'
kill $big 2>/dev/null || true
echo "large posts during the run: $(sort "$work/big-codes" | uniq -c | awk '{printf "%s x %s  ", $1, $2}')"
