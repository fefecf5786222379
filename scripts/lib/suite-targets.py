#!/usr/bin/env python3
"""Prints the ninja targets one meson test suite needs, one per line.

Usage: suite-targets.py BUILD_DIR SUITE

From `meson introspect --tests` and `--targets`: every target a test of
SUITE runs or names in `depends`, as a path relative to BUILD_DIR (what
`ninja -C BUILD_DIR` takes). scripts/run-tests builds only these in its
sanitizer tree, where the rest of the project (the vm tests, most of all)
would be compiled for nothing. Exits 1 with a message when the suite has no
test or a dependency cannot be resolved, so a renamed suite cannot quietly
build nothing.
"""
import json
import os
import subprocess
import sys


def introspect(build_dir, what):
    out = subprocess.run(["meson", "introspect", what, build_dir], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    build_dir, suite = os.path.abspath(sys.argv[1]), sys.argv[2]
    tests = [t for t in introspect(build_dir, "--tests")
             if any(s == suite or s.endswith(":" + suite) for s in t["suite"])]
    if not tests:
        sys.exit(f"suite-targets: no test in suite '{suite}' in {build_dir}")
    targets = {t["id"]: t["filename"] for t in introspect(build_dir, "--targets")}
    built_files = {f for files in targets.values() for f in files}
    wanted = set()
    for test in tests:
        for dep in test["depends"]:
            if dep not in targets:
                sys.exit(f"suite-targets: test '{test['name']}' depends on unknown target {dep}")
            wanted.update(targets[dep])
        if test["cmd"] and test["cmd"][0] in built_files:
            wanted.add(test["cmd"][0])
    for path in sorted(wanted):
        print(os.path.relpath(path, build_dir))


if __name__ == "__main__":
    main()
