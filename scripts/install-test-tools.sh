#!/usr/bin/env bash
# Installs what the tests need and that a fresh machine may lack: moto's server (PyPI), curl,
# openssl, testssl.sh and nginx (Debian; testssl.sh scans the mesh listener's protocols, suites and
# ALPN; nginx for the smoke run of Benchmarks/compare.sh). Idempotent: installs only what is missing.
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
