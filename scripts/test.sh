#!/usr/bin/env bash
# The whole test suite: installs the test tools, then builds and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-tools.sh
scripts/check-prometheus-conf.sh
# The SigV4 vectors and Consul examples live in ../shared beside the checkout.
if [ -z "${LAMBDA_GATEWAY_SHARED_DIR:-}" ] && [ ! -d ../shared/testdata ]; then
    echo "error: ../shared/testdata not found; set LAMBDA_GATEWAY_SHARED_DIR to the shared/ folder" >&2
    exit 1
fi
# Run in parallel on two cores, a few older tests that time real waits (credential refresh, an
# Invoke deadline, a watch's re-poll) can miss their margin; a failed run is repeated once, so such a
# miss does not fail CI while a real failure still does (it fails twice). Issue 21 replaces those
# waits with events.
# Each run is bounded (20 min; the suite takes about 1 min here), so a hung test fails CI instead
# of holding it for its 90 minutes.
# Two groups keep both cores busy and starve the tests that time real waits, so with no arguments
# each runs on its own after the rest: the scale suites (1,000 services; 10,000 intentions
# entries), and the suites that start moto's server (a Python process per test) and other
# processes (the registrator's, the AWS clients').
# Formatting: the style of .swift-format (swift-format ships with the toolchain); `swift format -i -r
# Sources Tests Benchmarks Fuzz Package.swift` fixes what it finds.
swift format lint --strict -r Sources Tests Benchmarks Fuzz Package.swift
# Every module declares what it imports (a transitive dependency is not one).
swift package dump-package | scripts/check-imports.py
swift build --build-tests
scale='ScaleTests|IntentionsScaleMeasurement'
processes='AccessLogRunTests|ExtensionProcessTests|ExtensionEndToEndTests|RegistratorSyncTests|RegistratorEventSyncTests|RegistratorExtensionDataTests|RegistratorEnvironmentTests|RegistratorEnterpriseTests|RegistratorCommandTests|RegistratorLambdaRuntimeTests|MotoLambdaTests|MotoSSMTests|MotoSignatureTests'
run_suite() { timeout 1200 swift test --skip-build "$@"; }
run_twice() { run_suite "$@" || { echo "== the suite failed; running it once more to tell a timing miss from a failure" >&2; run_suite "$@"; }; }
if [ $# -eq 0 ]; then
    run_twice --skip "$scale|$processes"
    run_suite --filter "$scale"
    run_twice --filter "$processes"
else
    run_suite "$@" || { echo "== the suite failed; running it once more to tell a timing miss from a failure" >&2; run_suite "$@"; }
fi
# With no arguments (the whole suite, as CI runs it): the side-by-side comparison in its smoke mode,
# which checks that every piece of it works and never how fast anything is.
if [ $# -eq 0 ]; then
    SMOKE=1 Benchmarks/compare.sh
    # A registrator full sync of 300 functions against moto, with MAX_CONCURRENCY 8 and 1, on the
    # debug build the tests used (the 1,000-function figures of BENCHMARKS.md are a release build).
    SMOKE=1 CONFIG=debug Benchmarks/registrator.sh
    SMOKE=1 Benchmarks/streaming.sh
    # Every parser's fuzz target, briefly: they build (sanitizers, libFuzzer) and the seeds and a
    # few seconds of mutations find no crash. The long runs are `scripts/fuzz.sh --seconds 600`.
    scripts/fuzz.sh --seconds 10
fi
