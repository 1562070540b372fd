#!/usr/bin/env python3
"""Reference-count operations per request in a callgrind profile, by the function that made them.

    Benchmarks/callgrind_refcounts.py PROFILE REQUESTS [ROWS]

PROFILE: a gateway profile kept by `CALLGRIND=1000 CALLGRIND_ONLY=1 CALLGRIND_KEEP=/tmp/cg
Benchmarks/compare.sh` (/tmp/cg for HTTP/1.1, /tmp/cg.h2, /tmp/cg.ab); REQUESTS: the requests it
counted (CALLGRIND). Counts the calls into swift_retain, swift_release and their bridge-object and
_n forms from every call edge of the profile. A call made by a value witness or an outlined copy
(`initializeWithCopy for X`, `outlined destroy of X`) is charged to the functions that called the
witness, in proportion to their calls: the row then names the code that copied the value.
Names are demangled with `swift demangle`.
"""
import collections
import re
import subprocess
import sys

RC = {
    "swift_retain", "swift_release", "swift_retain_n", "swift_release_n", "swift_bridgeObjectRetain", "swift_bridgeObjectRelease",
    "swift_bridgeObjectRetain_n", "swift_bridgeObjectRelease_n", "swift_retain'2", "swift_release'2",
}
WITNESS = re.compile(
    r"(outlined (copy|consume|destroy|init|retain|release)|initializeWithCopy|initializeWithTake|destroy for|assignWithCopy|assignWithTake"
    r"|initializeBufferWithCopyOfBuffer|objectdestroy)"
)


def call_counts(path):
    """(caller, callee) -> calls, from the profile's cfn=/calls= lines (names compressed as `(id) name`)."""
    names = {}

    def name(text):
        match = re.match(r"\((\d+)\)(?: (.*))?", text)
        if not match:
            return text
        if match.group(2):
            names[match.group(1)] = match.group(2)
        return names.get(match.group(1), text)

    calls = collections.Counter()
    function = callee = None
    pending = None
    with open(path) as profile:
        for line in profile:
            if line.startswith("fn="):
                function = name(line[3:].strip())
            elif line.startswith("cfn="):
                callee = name(line[4:].strip())
            elif line.startswith("calls="):
                pending = int(line[6:].split()[0])
            elif pending is not None and line[:1] and (line[0].isdigit() or line[0] in "+-*"):
                calls[(function, callee)] += pending
                pending = None
    return calls


def main():
    path, requests = sys.argv[1], float(sys.argv[2])
    rows = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    calls = call_counts(path)
    every = sorted({a for a, _ in calls} | {b for _, b in calls})
    demangled = subprocess.run(["swift", "demangle", "--simplified"], input="\n".join(every), capture_output=True, text=True).stdout.split("\n")
    readable = dict(zip(every, demangled))
    made = collections.Counter()
    for (caller, callee), count in calls.items():
        if callee in RC and caller not in RC:
            made[caller] += count
    callers = collections.defaultdict(collections.Counter)
    for (caller, callee), count in calls.items():
        callers[callee][caller] += count
    charged = collections.Counter()
    for function, count in made.items():
        into = callers[function]
        total = sum(into.values())
        if (WITNESS.match(readable.get(function, function)) or function.startswith("0x")) and total:
            for caller, share in into.items():
                charged[readable.get(caller, caller)] += count * share / total
        else:
            charged[readable.get(function, function)] += count
    print(f"reference-count operations per request: {sum(made.values()) / requests:.0f}")
    for function, count in charged.most_common(rows):
        print(f"{count / requests:8.1f}  {function[:160]}")


if __name__ == "__main__":
    main()
