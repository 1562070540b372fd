#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ (debug, -sanitize=fuzzer,address, in .build-fuzz) and runs
# each, or the one named, for N seconds from its committed seeds in Fuzz/Corpus/<target>/.
#
#   scripts/fuzz.sh [--seconds N] [--no-build] [TARGET]
#
# Each run works in .build-fuzz/runs/<target>/ (a fresh copy of the seeds, the log, and any crash,
# leak or timeout input), so the repository stays clean. One summary line per target; the exit
# status is non-zero if any target crashed. Reproduce a crash with
#   .build-fuzz/debug/<target> .build-fuzz/runs/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(FuzzSNI FuzzSPIFFE FuzzARN FuzzPayloadJSON FuzzResponseDecoder FuzzConsulJSON FuzzGoDuration FuzzStaticConfig FuzzHTTP1Head FuzzAccessLogFormat FuzzTraceHeaders FuzzEventStream FuzzStreamingPrelude FuzzUpstreamResponse FuzzHTTP2Fields)
seconds=60
build=1
selected=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "error: unknown option $1" >&2; exit 2 ;;
        *)
            if [[ " ${TARGETS[*]} " != *" $1 "* ]]; then
                echo "error: no fuzz target $1 (targets: ${TARGETS[*]})" >&2
                exit 2
            fi
            selected+=("$1"); shift ;;
    esac
done
[ ${#selected[@]} -gt 0 ] || selected=("${TARGETS[@]}")

# LAMBDA_GATEWAY_FUZZ_SCRATCH=.build (CI) builds in the normal build folder: the C and C++ code
# (BoringSSL, llhttp: half the steps) is compiled once for both builds, since -Xswiftc changes
# only Swift's commands. Locally the default keeps the fuzz build apart, so that a normal build
# after it does not recompile every Swift module.
scratch=${LAMBDA_GATEWAY_FUZZ_SCRATCH:-.build-fuzz}
# This machine runs one swift command at a time through a lock; CI has no lock and runs swift itself.
swift_cmd=(swift)
[ -x /work/swift-locked ] && swift_cmd=(/work/swift-locked)

if [ "$build" = 1 ]; then
    # Reuse the dependency checkouts of the normal build, so the fuzz build resolves nothing.
    if [ ! -d "$scratch/checkouts" ] && [ -d .build/checkouts ] && [ -f .build/workspace-state.json ]; then
        mkdir -p "$scratch"
        cp -a .build/checkouts .build/repositories .build/workspace-state.json "$scratch"/
    fi
    started=$(date +%s)
    for target in "${selected[@]}"; do
        LAMBDA_GATEWAY_FUZZ=1 "${swift_cmd[@]}" build --scratch-path "$scratch" \
            -Xswiftc -sanitize=fuzzer,address --product "$target"
    done
    echo "fuzz build: $(( $(date +%s) - started )) s"
fi

# libFuzzer reports a crash itself (stack, input); Swift's backtracer would attach to the dying
# process first and can hang there.
export SWIFT_BACKTRACE=enable=no
# Leaks are checked per input (libFuzzer reruns an input that allocated more than it freed). The
# check at exit is off: it reports long-lived values held only through Swift's multi-payload enum
# pointers (spare bits set), which LeakSanitizer does not recognise (a target's fixture, a compiled
# Regex), as leaks.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}leak_check_at_exit=0"
crashed=0
for target in "${selected[@]}"; do
    binary="$scratch/debug/$target"
    [ -x "$binary" ] || { echo "error: $binary is not built" >&2; exit 1; }
    run="$scratch/runs/$target"
    rm -rf "$run"
    mkdir -p "$run/corpus"
    cp Fuzz/Corpus/"$target"/* "$run/corpus/"
    seeds=$(ls "$run/corpus" | wc -l)
    status=0
    # A slow input (30 s) counts as a failure too.
    nice -n 19 "$binary" "$run/corpus" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=30 \
        -print_final_stats=1 -artifact_prefix="$run/" > "$run/fuzz.log" 2>&1 || status=$?
    # The last status line: "#N DONE cov: C ft: F corp: K/Sb ..." (or the last "#N ..." before a crash).
    last=$(grep -E '^#[0-9]+' "$run/fuzz.log" | tail -1 || true)
    execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$run/fuzz.log" | tail -1 | grep -oE '[0-9]+$' || true)
    [ -n "$execs" ] || execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
    corpus=$(grep -oE 'corp: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
    artifacts=$(find "$run" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
    printf '%-20s %4ss  execs %9s  cov %5s  ft %6s  corpus %4s (seeds %s)  %s\n' \
        "$target" "$seconds" "${execs:-?}" "$cov" "$ft" "$corpus" "$seeds" "$([ "$status" = 0 ] && echo ok || echo "FAILED (exit $status)")"
    if [ "$status" != 0 ] || [ -n "$artifacts" ]; then
        crashed=1
        for file in $artifacts; do echo "    input: $file"; done
        grep -m1 -E 'ERROR: |Fatal error|Precondition failed|==[0-9]+==' "$run/fuzz.log" | sed 's/^/    /' || true
        echo "    log: $run/fuzz.log"
    fi
done
exit "$crashed"
