#!/usr/bin/env bash
# The main job on a fresh machine, no AWS account needed: builds lambda-gateway, starts moto's
# Lambda on 127.0.0.1 with IAM authentication on (it checks every signature), and invokes a
# function through the gateway's credential chain, SigV4 signer and pooled client.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-tools.sh
swift build --product lambda-gateway
bin="$(swift build --show-bin-path)/lambda-gateway"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto_pid=$!
trap 'kill -9 "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done

fixture=$(python3 scripts/moto_fixture.py "http://127.0.0.1:$port")
field() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval('d'+sys.argv[2]))" "$fixture" "$1"; }
export AWS_ACCESS_KEY_ID=$(field '["user"]["access_key_id"]')
export AWS_SECRET_ACCESS_KEY=$(field '["user"]["secret_access_key"]')
arn=$(field '["function_arn"]')

echo "== invoking $arn on moto at 127.0.0.1:$port (signed with an IAM user's key)"
"$bin" invoke "$arn" --endpoint "http://127.0.0.1:$port" --name-in-path --data '{"hello":"mesh"}' --verbose
echo "== the same call signed with a wrong secret is refused by moto:"
AWS_SECRET_ACCESS_KEY=wrong "$bin" invoke "$arn" --endpoint "http://127.0.0.1:$port" --name-in-path --data '{"hello":"mesh"}' || echo "(exit status $?, as expected)"
