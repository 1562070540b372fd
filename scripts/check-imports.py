#!/usr/bin/env python3
"""Every module declares in Package.swift each module it imports (issue 21): a transitive
dependency that happens to be linked is not one. Reads `swift package dump-package` on stdin."""
import glob
import json
import re
import sys

# Modules of the toolchain, which Package.swift does not list.
TOOLCHAIN = {"Foundation", "FoundationEssentials", "FoundationNetworking", "Synchronization", "Testing", "Dispatch", "Glibc", "Musl", "Darwin", "RegexBuilder", "_Concurrency"}
IMPORT = re.compile(r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:public\s+|internal\s+|package\s+)?import\s+(?:struct\s+|class\s+|enum\s+|func\s+|protocol\s+|typealias\s+|let\s+|var\s+)?(\w+)")

package = json.load(sys.stdin)
failed = False
for target in package["targets"]:
    if target["type"] in ("plugin", "binary"):
        continue
    name = target["name"]
    path = target.get("path") or ("Tests/" if target["type"] == "test" else "Sources/") + name
    declared = {value[0] for dependency in target["dependencies"] for value in dependency.values()}
    imported = {}
    for file in glob.glob(f"{path}/**/*.swift", recursive=True):
        in_block_comment = in_string = False
        for number, line in enumerate(open(file, encoding="utf-8"), 1):
            # Text in multi-line string literals (a Python script a test runs) is not Swift.
            if line.count('"""') % 2 == 1:
                in_string = not in_string
                continue
            if in_string:
                continue
            if "/*" in line:
                in_block_comment = True
            if in_block_comment:
                in_block_comment = "*/" not in line
                continue
            match = IMPORT.match(line)
            if match:
                imported.setdefault(match.group(1), f"{file}:{number}")
    for module, where in sorted(imported.items()):
        if module not in declared and module not in TOOLCHAIN:
            print(f"{where}: {name} imports {module}, which Package.swift does not declare for it", file=sys.stderr)
            failed = True
sys.exit(1 if failed else 0)
