#!/usr/bin/env bash
# Builds the registrator as a Lambda custom runtime: a zip holding one `bootstrap` executable (the
# lambda-gateway binary, Swift runtime linked statically), for the provided.al2023 runtime.
#
#   scripts/package-registrator.sh [OUTPUT.zip]      (default .build/lambda-registrator.zip)
#
# Run as `bootstrap` without arguments, the binary runs `lambda-gateway registrator lambda`. Prints
# the glibc symbol versions the binary needs: provided.al2023 has glibc 2.34, so none may be newer.
# SWIFT: the swift command (default swift). Architecture: the build machine's (x86_64 or arm64).
set -euo pipefail
cd "$(dirname "$0")/.."
output=$(realpath -m "${1:-.build/lambda-registrator.zip}")
swift_cmd=${SWIFT:-swift}
[ -z "${SWIFT:-}" ] && [ -x /work/swift-locked ] && swift_cmd=/work/swift-locked

# --wrap: Sources/GlibcCompat binds hypot/hypotf to versions glibc 2.34 has (the build machine's
# glibc may be newer).
flags=(-c release --static-swift-stdlib -Xlinker -s -Xlinker --wrap=hypot -Xlinker --wrap=hypotf)
$swift_cmd build "${flags[@]}" --product lambda-gateway
binary="$($swift_cmd build "${flags[@]}" --show-bin-path)/lambda-gateway"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$binary" "$stage/bootstrap"
chmod 755 "$stage/bootstrap"
mkdir -p "$(dirname "$output")"
rm -f "$output"
(cd "$stage" && zip -q -X "$output" bootstrap) 2>/dev/null || python3 - "$stage/bootstrap" "$output" <<'PY'
import sys, zipfile
info = zipfile.ZipInfo("bootstrap")
info.external_attr = 0o755 << 16
with open(sys.argv[1], "rb") as f, zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr(info, f.read())
PY

echo "package: $output ($(du -h "$output" | cut -f1), $(uname -m))"
echo "shared libraries needed:"
readelf -d "$stage/bootstrap" | awk '/NEEDED/ { gsub(/[\[\]]/, "", $5); print "  " $5 }'
newest=$(objdump -T "$stage/bootstrap" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1)
echo "glibc symbol versions: $(objdump -T "$stage/bootstrap" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tr '\n' ' ')"
if [ "$(printf '%s\nGLIBC_2.34\n' "$newest" | sort -V | tail -1)" != "GLIBC_2.34" ]; then
    echo "warning: needs $newest, newer than provided.al2023's glibc 2.34" >&2
    exit 1
fi
echo "ok: the newest glibc version needed is $newest (provided.al2023 has 2.34)"
