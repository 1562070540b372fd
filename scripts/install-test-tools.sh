#!/usr/bin/env bash
# Installs what the tests need and that a fresh machine may lack: moto's server (PyPI), curl,
# openssl, testssl.sh and nginx (Debian; testssl.sh scans the mesh listener's protocols, suites and
# ALPN; nginx for the smoke run of Benchmarks/compare.sh), and promtool (Debian's prometheus package,
# for scripts/check-prometheus-conf.sh). Idempotent: installs only what is missing.
set -euo pipefail

if ! python3 -c 'import moto, flask, flask_cors, boto3' >/dev/null 2>&1 || ! command -v moto_server >/dev/null 2>&1; then
    echo "installing moto[server] from PyPI"
    python3 -m pip install --quiet 'moto[server]>=5,<6'
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi

missing=()
for tool in curl openssl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
# Debian installs testssl.sh as `testssl`.
command -v testssl >/dev/null 2>&1 || command -v testssl.sh >/dev/null 2>&1 || missing+=(testssl.sh)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} from Debian"
    apt_get="apt-get"
    [ "$(id -u)" -ne 0 ] && apt_get="sudo apt-get"
    $apt_get update -qq
    DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq "${missing[@]}" >/dev/null
fi

# promtool ships in the prometheus package, whose server is not wanted here: installed without its
# recommends (the node exporter, another daemon), and where its postinst starts the server (only under
# systemd), that server is stopped and disabled again, and any prometheus process that was not running
# before is ended by its PID.
if ! command -v promtool >/dev/null 2>&1; then
    echo "installing prometheus (for promtool) from Debian"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    before=" $(pgrep -x prometheus | tr '\n' ' ' || true) "
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
    fi
    for pid in $(pgrep -x prometheus || true); do
        case "$before" in *" $pid "*) ;; *) echo "stopping the prometheus server the package started (PID $pid)"; $sudo kill "$pid" || true ;; esac
    done
    command -v promtool >/dev/null 2>&1 || { echo "error: promtool still not found after installing prometheus" >&2; exit 1; }
fi
