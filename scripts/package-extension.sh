#!/usr/bin/env bash
# Builds the Lambda-to-mesh extension (README.md, `lambda-mesh-extension`) as a Lambda layer: a zip holding one
# executable, `extensions/lambda-mesh-extension` (Swift runtime linked statically), for functions on
# provided.al2023 or any other Amazon Linux 2023 runtime. Lambda starts every file in the layer's
# `extensions/` as an external extension, which registers under its own file name.
#
#   scripts/package-extension.sh [OUTPUT.zip]      (default .build/lambda-mesh-extension-layer-ARCH.zip)
#
# Prints the zip's and the binary's sizes, the shared libraries the binary loads (ldd; fails if one is
# a libswift*.so, which no Lambda runtime has), and the glibc symbol versions it needs: fails if any
# is newer than provided.al2023's glibc 2.34.
# SWIFT: the swift command (default swift; /work/swift-locked when present).
#
# Architecture: the build machine's (ARCH = x86_64 or arm64). For an arm64 layer, run this script
# on an arm64 Linux machine or container with the same Swift toolchain (e.g. a Graviton instance);
# the binary then links glibc dynamically exactly as on x86_64, and the same checks apply. This
# script does not cross-compile: that needs a Swift SDK for aarch64 Linux with glibc (for example
# one made with apple/swift-sdk-generator) added to `flags` as `--swift-sdk <its id>`, and the ldd
# check below only runs on the build machine's architecture. The static Linux SDK (musl) is not
# used: Sources/GlibcCompat binds glibc symbol versions that musl does not have.
set -euo pipefail
cd "$(dirname "$0")/.."
case "$(uname -m)" in
    x86_64) arch=x86_64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
esac
output=$(realpath -m "${1:-.build/lambda-mesh-extension-layer-$arch.zip}")
swift_cmd=${SWIFT:-swift}
[ -z "${SWIFT:-}" ] && [ -x /work/swift-locked ] && swift_cmd=/work/swift-locked

# --wrap: Sources/GlibcCompat (linked into lambda-mesh-extension for this) binds hypot/hypotf to
# versions glibc 2.34 has (the build machine's glibc may be newer).
flags=(-c release --static-swift-stdlib -Xlinker -s -Xlinker --wrap=hypot -Xlinker --wrap=hypotf)
$swift_cmd build "${flags[@]}" --product lambda-mesh-extension
binary="$($swift_cmd build "${flags[@]}" --show-bin-path)/lambda-mesh-extension"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/extensions"
staged="$stage/extensions/lambda-mesh-extension"
cp "$binary" "$staged"
chmod 755 "$stage/extensions" "$staged"
mkdir -p "$(dirname "$output")"
rm -f "$output"
(cd "$stage" && zip -q -X -r "$output" extensions) 2>/dev/null || python3 - "$staged" "$output" <<'PY'
import sys, zipfile
folder = zipfile.ZipInfo("extensions/")
folder.external_attr = (0o40755 << 16) | 0x10
info = zipfile.ZipInfo("extensions/lambda-mesh-extension")
info.external_attr = 0o100755 << 16
with open(sys.argv[1], "rb") as f, zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr(folder, b"")
    z.writestr(info, f.read())
PY

size() { echo "$(numfmt --to=iec-i --suffix=B --format=%.1f "$(stat -c %s "$1")"), $(stat -c %s "$1") bytes"; }
echo "layer: $output ($(size "$output"), $arch)"
echo "binary: extensions/lambda-mesh-extension ($(size "$staged"))"
echo "ldd:"
ldd "$staged" | sed 's/^[[:space:]]*/  /'
if ldd "$staged" | grep -q 'libswift' || readelf -d "$staged" | grep NEEDED | grep -q 'libswift'; then
    echo "error: the binary loads a libswift*.so; the Swift runtime must be linked statically" >&2
    exit 1
fi
versions=$(objdump -T "$staged" | grep -o 'GLIBC_[0-9.]*' | sort -Vu)
newest=$(tail -1 <<<"$versions")
echo "glibc symbol versions: $(tr '\n' ' ' <<<"$versions")"
if [ "$(printf '%s\nGLIBC_2.34\n' "$newest" | sort -V | tail -1)" != "GLIBC_2.34" ]; then
    echo "error: needs $newest, newer than provided.al2023's glibc 2.34" >&2
    exit 1
fi
echo "ok: no libswift*.so; the newest glibc version needed is $newest (provided.al2023 has 2.34)"
