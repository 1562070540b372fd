#!/usr/bin/env python3
"""Turns ApacheBench's report (standard input) into a JSON line shaped like mesh-load's, for compare.sh.

ab counts a non-2xx answer apart from its failed requests: both are errors here.
Arguments: label, the contestant's CPU ticks before and after the run, ticks per second, connections.
"""
import json
import re
import sys


def number(pattern, text, default=0.0):
    match = re.search(pattern, text)
    return float(match.group(1)) if match else default


def main():
    label, before, after, ticks, connections = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    text = sys.stdin.read()
    requests = int(number(r"Complete requests:\s+(\d+)", text))
    failed = int(number(r"Failed requests:\s+(\d+)", text))
    non2xx = int(number(r"Non-2xx responses:\s+(\d+)", text))
    seconds = number(r"Time taken for tests:\s+([\d.]+)", text)
    errors = {}
    if failed:
        errors["failed"] = failed
    if non2xx:
        errors["non-2xx"] = non2xx
    if requests == 0:
        errors["ab"] = text.strip().splitlines()[-1] if text.strip() else "no output"
    print(json.dumps({
        "label": label,
        "client": "ab",
        "connections": connections,
        "requests": requests,
        "rps": requests / seconds if seconds else 0.0,
        "duration_s": seconds,
        "warmup_s": 0,
        "errors": errors,
        "error_count": failed + non2xx + (1 if requests == 0 else 0),
        "cpu_s": (after - before) / ticks,
    }))


main()
