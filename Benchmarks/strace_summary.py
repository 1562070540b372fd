#!/usr/bin/env python3
"""strace_summary.py LABEL STRACE_C_OUTPUT MESH_LOAD_JSON: system calls per request from `strace -c`'s
table and mesh-load's result line. Prints one JSON member, `"LABEL":{...}`, and a summary on stderr."""
import json
import sys

label, table, result = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
requests = max(1, result["requests"])
calls = {}
for line in open(table):
    parts = line.split()
    # % time, seconds, usecs/call, calls, [errors,] syscall
    if len(parts) < 5 or not parts[0].replace(".", "").isdigit() or parts[-1] == "total":
        continue
    calls[parts[-1]] = int(parts[3])
per_request = {name: round(count / requests, 2) for name, count in sorted(calls.items(), key=lambda item: -item[1])}
total = round(sum(calls.values()) / requests, 2)
top = ", ".join(f"{name} {count}" for name, count in list(per_request.items())[:6])
print(f"   {label}: {requests} requests, {total} system calls per request ({top})", file=sys.stderr)
print(json.dumps(label) + ":" + json.dumps({"requests": requests, "perRequest": total, "byCall": per_request}))
